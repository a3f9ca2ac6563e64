// Package node_test runs the official Milvus Node SDK
// (@zilliz/milvus2-sdk-node, pinned in package.json) through l7lb: the
// seed's step 4 with Node.js instead of PyMilvus.
//
// It needs Node.js and the SDK installed once:
//
//	npm ci --prefix test/node
//	go test ./test/node/ -v
package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/demo"
)

const installHint = "run `npm ci --prefix test/node` (Node.js 20 or later and npm are needed)"

// report is the JSON line sdk.mjs prints on success.
type report struct {
	OK         bool     `json:"ok"`
	SDK        string   `json:"sdk"`
	Address    string   `json:"address"`
	ServerName string   `json:"server_name"`
	Rows       int      `json:"rows"`
	Dim        int      `json:"dim"`
	Inserted   int      `json:"inserted"`
	Searches   int      `json:"searches"`
	TopK       int      `json:"topk"`
	QueryRows  int      `json:"query_rows"`
	Checks     []string `json:"checks"`
}

func TestNodeSDKThroughL7LB(t *testing.T) {
	node := requireNodeSDK(t)
	dir, err := os.Getwd() // go test runs a package's tests in its directory: test/node
	if err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	env, err := demo.Start(t.TempDir(), "127.0.0.1:0", logger)
	if err != nil {
		t.Fatalf("start the Milvus test cluster and l7lb: %v", err)
	}
	t.Cleanup(env.Close)

	replicas := env.Cluster.Replicas()
	before := make([]int64, len(replicas))
	for i, r := range replicas {
		before[i] = r.Served()
	}

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sdk.mjs")
	cmd.Dir = dir
	cmd.Env = append(withoutProxy(os.Environ()),
		"L7LB_ADDR="+env.Addr,
		"L7LB_CA_FILE="+env.CAFile,
		"L7LB_SERVER_NAME="+demo.ServerName,
	)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	took := time.Since(start)
	if stderr.Len() > 0 {
		t.Logf("sdk.mjs stderr:\n%s", stderr.Bytes())
	}
	t.Logf("sdk.mjs stdout (%v):\n%s", took.Round(time.Millisecond), stdout.Bytes())
	if runErr != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("node sdk.mjs did not finish within 90 s: %v", runErr)
		}
		t.Fatalf("node sdk.mjs failed: %v\n%s", runErr, strings.TrimSpace(stderr.String()))
	}

	rep := lastJSONLine(t, stdout.String())
	if !rep.OK {
		t.Errorf("report ok = false: %+v", rep)
	}
	if rep.SDK != "@zilliz/milvus2-sdk-node" || rep.Address != env.Addr || rep.ServerName != demo.ServerName {
		t.Errorf("report names sdk %q, address %q, server name %q; want @zilliz/milvus2-sdk-node, %q, %q",
			rep.SDK, rep.Address, rep.ServerName, env.Addr, demo.ServerName)
	}
	if rep.Rows != 100 || rep.Inserted != 100 || rep.Dim != 8 {
		t.Errorf("report rows %d, inserted %d, dim %d; want 100, 100, 8", rep.Rows, rep.Inserted, rep.Dim)
	}
	if rep.Searches < 1 || rep.TopK != 5 {
		t.Errorf("report searches %d, topk %d; want at least 1 search with topk 5", rep.Searches, rep.TopK)
	}
	if rep.QueryRows != 3 {
		t.Errorf("report query_rows %d, want 3", rep.QueryRows)
	}
	for _, want := range []string{"connect", "createCollection", "insert", "createIndex", "loadCollectionSync", "search", "query", "dropCollection"} {
		if !slices.ContainsFunc(rep.Checks, func(c string) bool { return strings.HasPrefix(c, want) }) {
			t.Errorf("report checks %q lack %q", rep.Checks, want)
		}
	}

	// Every RPC of the script travelled over one HTTP/2 connection; l7lb
	// balancing per RPC spreads them over the replicas.
	busy, total := 0, int64(0)
	for i, r := range replicas {
		n := r.Served() - before[i]
		total += n
		if n > 0 {
			busy++
		}
		t.Logf("%s served %d RPCs", r.Name(), n)
	}
	if busy < 2 {
		t.Errorf("%d RPCs reached %d of %d replicas; per-RPC balancing should use at least 2", total, busy, len(replicas))
	}
}

// requireNodeSDK returns the path of `node`, and fails the test when
// Node.js or the SDK (in test/node/node_modules) is missing.
func requireNodeSDK(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("Node.js (`node`) is not on PATH: %v; install Node.js 20 or later, then %s", err, installHint)
	}
	dir, err := os.Getwd() // go test runs a package's tests in its directory: test/node
	if err != nil {
		t.Fatal(err)
	}
	sdkPkg := filepath.Join(dir, "node_modules", "@zilliz", "milvus2-sdk-node", "package.json")
	if _, err := os.Stat(sdkPkg); err != nil {
		t.Fatalf("the Milvus Node SDK is not installed in %s: %v; %s", filepath.Join(dir, "node_modules"), err, installHint)
	}
	return node
}

// lastJSONLine decodes the last non-empty line of out.
func lastJSONLine(t *testing.T, out string) report {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		t.Fatal("sdk.mjs printed nothing on stdout")
	}
	var rep report
	if err := json.Unmarshal([]byte(last), &rep); err != nil {
		t.Fatalf("sdk.mjs's last line is not its JSON report: %v: %q", err, last)
	}
	return rep
}

// withoutProxy drops proxy settings, so the SDK talks to l7lb on loopback
// directly (sdk.mjs also turns grpc-js's proxy support off).
func withoutProxy(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "no_proxy":
			continue
		}
		out = append(out, kv)
	}
	return out
}
