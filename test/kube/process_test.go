package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/lbtest"
)

// TestControllerProcessObservability runs the `l7lb controller` binary
// with the flags the chart renders for metrics and the access log
// (--admin, --access-log=stdout, --access-log-sample) against the real API
// server: after SDK RPCs through it, its /metrics holds the applied
// snapshot as a successful reload, the served certificate's expiry (read
// from its Secret) and the requests by method; stdout holds one access
// log line per RPC.
func TestControllerProcessObservability(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	b := startBackend(t, ctx)
	deleteIngressesAtEnd(t, "ctl-proc")
	bin := filepath.Join(t.TempDir(), "l7lb")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/l7lb/l7lb/cmd/l7lb").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	listen, admin, health := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	cmd := exec.Command(bin, "controller", "--kubeconfig="+shared.kubeconfigPath(), "--namespace="+controlNS,
		"--class=alb", "--publish-address=127.0.0.1", "--lease=", "--listen=443="+listen, "--health-address="+health,
		"--admin="+admin, "--access-log=stdout", "--access-log-sample=1", "--shutdown-delay=0s", "--drain-timeout=2s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lbtest.Buffer{}
	cmd.Stderr = logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) //nolint:errcheck // may have exited
		cmd.Wait()                       //nolint:errcheck // stopped on purpose
		if t.Failed() {
			t.Logf("l7lb controller's log:\n%s", logs.String())
		}
	})
	createIngress(t, ctx, ingressFor("ctl-proc", serverName, nil))

	const n = 12
	eventually(t, 60*time.Second, "RPCs through the controller process", func() (bool, string) {
		cli, err := demo.Connect(ctx, listen, serverName, b.ca.Pool())
		if err != nil {
			return false, err.Error()
		}
		defer cli.Close(context.Background())
		for i := range n {
			if _, err := cli.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
				return false, fmt.Sprintf("RPC %d: %v", i, err)
			}
		}
		return true, ""
	})

	metrics := func() string {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	for _, want := range []string{
		`l7lb_config_reloads_total{result="success"}`,
		`l7lb_certificate_not_after_timestamp_seconds{arn="` + seedARN + `",domain_name="` + serverName + `"}`,
		`grpc_method="ShowCollections"`,
	} {
		eventually(t, 10*time.Second, "/metrics with "+want, func() (bool, string) {
			return strings.Contains(metrics(), want), "absent"
		})
	}

	// The access log: JSON lines on stdout, ShowCollections among them
	// (ListCollections is ShowCollections on the wire).
	shown := 0
	deadline := time.After(10 * time.Second)
	for shown < n {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stdout closed after %d access log lines", shown)
			}
			var e struct {
				GRPCMethod  string `json:"grpc_method"`
				TargetGroup string `json:"target_group"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("stdout line is not an access log entry: %q: %v", l, err)
			}
			if e.GRPCMethod == "ShowCollections" && e.TargetGroup == targetGroup {
				shown++
			}
		case <-deadline:
			t.Fatalf("%d ShowCollections access log lines on stdout, want %d", shown, n)
		}
	}
}
