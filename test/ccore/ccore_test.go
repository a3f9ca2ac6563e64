// Package ccore drives l7lb with gRPC C-core, the transport of pymilvus
// (the seed's own client): Debian's python3-grpcio runs client.py on the
// channel pymilvus builds for connect(host, port="443", secure=True,
// server_name=..., server_pem_path=CA), through l7lb's TLS listener to a
// three-replica fakemilvus cluster on loopback. The requests are built
// here with milvus-proto's go-api and sent as raw bytes; the replies come
// back as bytes and are decoded here.
package ccore

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/protobuf/proto"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
)

var binary string

func TestMain(m *testing.M) { os.Exit(lbtest.RunWithL7LB(m, &binary)) }

const (
	service = "/milvus.proto.milvus.MilvusService/"
	// perMethod calls of each unary method in the split phase.
	perMethod = 60
	// The large reply: rows × dim float32s (8 MiB of vectors).
	bigRows, bigDim = 4096, 512
	// slow is every replica's delay while the deadline and the cancel
	// run; the deadline is well under it.
	slow     = 1500 * time.Millisecond
	deadline = 0.3 // seconds
)

// pythonWithGRPC finds a Python that imports grpc (Debian's
// python3-grpcio lives in /usr/bin/python3's dist-packages). .ci/run
// installs it, so a missing one is a failure, not a skip.
func pythonWithGRPC(t *testing.T) string {
	var tried []string
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		out, err := exec.Command(p, "-c", "import grpc, grpc._cython.cygrpc; print(grpc.__version__)").CombinedOutput()
		if err == nil {
			return p
		}
		tried = append(tried, fmt.Sprintf("%s: %v %s", p, err, strings.TrimSpace(string(out))))
	}
	t.Fatalf("no Python with grpc (install Debian's python3-grpcio, as .ci/run does): %s", strings.Join(tried, "; "))
	return ""
}

type call struct {
	Phase   string  `json:"phase"`
	Method  string  `json:"method"`
	Code    string  `json:"code"`
	Replica string  `json:"replica"`
	Bytes   int     `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

type result struct {
	GRPCVersion string `json:"grpc_version"`
	Calls       []call `json:"calls"`
	Cancel      struct {
		InFlightBefore float64 `json:"in_flight_before"`
		CancelReturned bool    `json:"cancel_returned"`
		Cancelled      bool    `json:"cancelled"`
	} `json:"cancel"`
}

type rpc struct {
	Method  string  `json:"method"`
	Request string  `json:"request"` // hex
	Count   int     `json:"count,omitempty"`
	Timeout float64 `json:"timeout,omitempty"`
}

func request(t *testing.T, method string, m proto.Message, count int) rpc {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return rpc{Method: service + method, Request: hex.EncodeToString(b), Count: count}
}

// bigVector is row i of the large collection, recognisable when it comes
// back.
func bigVector(i int) []float32 {
	v := make([]float32, bigDim)
	for j := range v {
		v[j] = float32(i) + float32(j)/1024
	}
	return v
}

func TestPymilvusTransport(t *testing.T) {
	py := pythonWithGRPC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cluster, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	replicas := cluster.Replicas()

	// The large collection, made with the Go SDK straight on one replica
	// (the replicas share one engine).
	sdk, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: replicas[0].Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close(context.Background())
	if err := sdk.CreateCollection(ctx, milvusclient.SimpleCreateCollectionOptions("big", bigDim)); err != nil {
		t.Fatal(err)
	}
	vectors := make([][]float32, bigRows)
	for i := range vectors {
		vectors[i] = bigVector(i)
	}
	if _, err := sdk.Insert(ctx, milvusclient.NewColumnBasedInsertOption("big").WithFloatVectorColumn("vector", bigDim, vectors)); err != nil {
		t.Fatal(err)
	}

	lb := lbtest.StartProcess(t, lbtest.ProcOptions{Binary: binary, Targets: cluster.Addrs(), CAName: "C-core test CA"})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, lb.CA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}

	unaryMethods := []rpc{
		request(t, "ShowCollections", &milvuspb.ShowCollectionsRequest{}, perMethod),
		request(t, "GetVersion", &milvuspb.GetVersionRequest{}, perMethod),
		request(t, "DescribeCollection", &milvuspb.DescribeCollectionRequest{CollectionName: "big"}, perMethod),
	}
	dl := request(t, "GetVersion", &milvuspb.GetVersionRequest{}, 0)
	dl.Timeout = deadline
	plan := map[string]any{
		"target": lb.Addr, "server_name": lbtest.ServerName, "server_pem_path": caFile, "admin": lb.Admin, "out_dir": dir,
		"connect": request(t, "Connect", &milvuspb.ConnectRequest{ClientInfo: &commonpb.ClientInfo{SdkType: "Python", SdkVersion: "2.5.x (C-core test)"}}, 0),
		"unary":   unaryMethods,
		"large": request(t, "Query", &milvuspb.QueryRequest{CollectionName: "big", OutputFields: []string{"vector"},
			QueryParams: []*commonpb.KeyValuePair{{Key: "limit", Value: fmt.Sprint(bigRows)}}}, 0),
		"deadline": dl,
		"cancel":   request(t, "ShowCollections", &milvuspb.ShowCollectionsRequest{}, 0),
		"after":    request(t, "ShowCollections", &milvuspb.ShowCollectionsRequest{}, 6),
	}
	planFile := filepath.Join(dir, "plan.json")
	pb, _ := json.Marshal(plan)
	if err := os.WriteFile(planFile, pb, 0o644); err != nil {
		t.Fatal(err)
	}

	served := func() []int64 {
		var out []int64
		for _, r := range replicas {
			out = append(out, r.Served())
		}
		return out
	}
	before := served()
	var beforeSlow []int64

	cmd := exec.CommandContext(ctx, py, "client.py", planFile)
	var stderr lbtest.Buffer
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res result
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch line {
		case "sync slow":
			beforeSlow = served()
			for _, r := range replicas {
				r.SetLatency(slow)
			}
			io.WriteString(stdin, "go\n") //nolint:errcheck // a dead script fails below
		case "sync fast":
			for _, r := range replicas {
				r.SetLatency(0)
			}
			io.WriteString(stdin, "go\n") //nolint:errcheck
		default:
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Errorf("client.py printed %q", line)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client.py: %v\n%s", err, stderr.String())
	}
	t.Logf("grpcio %s (C-core), %d calls", res.GRPCVersion, len(res.Calls))

	byPhase := map[string][]call{}
	for _, c := range res.Calls {
		byPhase[c.Phase] = append(byPhase[c.Phase], c)
	}
	readReply := func(name string, m proto.Message) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(b, m); err != nil {
			t.Fatalf("%s reply: %v", name, err)
		}
	}
	okStatus := func(what string, st *commonpb.Status) {
		t.Helper()
		if st.GetCode() != 0 || st.GetErrorCode() != commonpb.ErrorCode_Success {
			t.Errorf("%s: status %v", what, st)
		}
	}

	// Connect, as pymilvus registers itself.
	if c := byPhase["connect"]; len(c) != 1 || c[0].Code != "OK" {
		t.Fatalf("Connect: %+v", c)
	}
	var conn milvuspb.ConnectResponse
	readReply("connect", &conn)
	okStatus("Connect", conn.GetStatus())

	// The split: every call OK, each method spread evenly over the three
	// replicas (round_robin per call, not per connection: C-core keeps
	// one HTTP/2 connection).
	names := map[string]bool{}
	for _, r := range replicas {
		names[r.Name()] = true
	}
	split := map[string]map[string]int{}
	perReplica := map[string]int64{}
	for _, c := range byPhase["unary"] {
		if c.Code != "OK" {
			t.Errorf("%s: %s", c.Method, c.Code)
		}
		if !names[c.Replica] {
			t.Errorf("%s answered by %q, not a replica", c.Method, c.Replica)
		}
		if split[c.Method] == nil {
			split[c.Method] = map[string]int{}
		}
		split[c.Method][c.Replica]++
		perReplica[c.Replica]++
	}
	share := float64(perMethod) / float64(len(replicas))
	for _, u := range unaryMethods {
		m := strings.TrimPrefix(u.Method, service)
		var parts []string
		for _, r := range replicas {
			n := split[m][r.Name()]
			parts = append(parts, fmt.Sprintf("%s %d", r.Name(), n))
			if math.Abs(float64(n)-share) > 0.2*share {
				t.Errorf("%s: %s served %d of %d, want %.0f ± 20%%", m, r.Name(), n, perMethod, share)
			}
		}
		t.Logf("%s ×%d: %s", m, perMethod, strings.Join(parts, ", "))
	}
	// fakemilvus's own per-replica counters agree with the reply headers:
	// Connect, the unary calls and the large Query, nothing lost or
	// doubled.
	extra := map[string]int64{}
	for _, p := range []string{"connect", "large"} {
		for _, c := range byPhase[p] {
			extra[c.Replica]++
		}
	}
	for i, r := range replicas {
		got := beforeSlow[i] - before[i]
		want := perReplica[r.Name()] + extra[r.Name()]
		if got != want {
			t.Errorf("%s: fakemilvus counted %d calls, the replies name it %d times", r.Name(), got, want)
		}
		t.Logf("%s: %d calls by fakemilvus's counter", r.Name(), got)
	}
	var show milvuspb.ShowCollectionsResponse
	readReply("unary-ShowCollections", &show)
	okStatus("ShowCollections", show.GetStatus())
	if len(show.GetCollectionNames()) != 1 || show.GetCollectionNames()[0] != "big" {
		t.Errorf("ShowCollections: %v, want [big]", show.GetCollectionNames())
	}
	var ver milvuspb.GetVersionResponse
	readReply("unary-GetVersion", &ver)
	okStatus("GetVersion", ver.GetStatus())
	var desc milvuspb.DescribeCollectionResponse
	readReply("unary-DescribeCollection", &desc)
	okStatus("DescribeCollection", desc.GetStatus())
	if desc.GetSchema().GetName() != "big" {
		t.Errorf("DescribeCollection: schema %q", desc.GetSchema().GetName())
	}

	// The large reply: every vector back, intact.
	lg := byPhase["large"]
	if len(lg) != 1 || lg[0].Code != "OK" || lg[0].Bytes < bigRows*bigDim*4 {
		t.Fatalf("large Query: %+v", lg)
	}
	var qr milvuspb.QueryResults
	readReply("large", &qr)
	okStatus("Query", qr.GetStatus())
	var got []float32
	for _, f := range qr.GetFieldsData() {
		if f.GetFieldName() == "vector" {
			got = f.GetVectors().GetFloatVector().GetData()
		}
	}
	if len(got) != bigRows*bigDim {
		t.Fatalf("Query returned %d floats, want %d", len(got), bigRows*bigDim)
	}
	seen := map[int]bool{}
	for r := 0; r < bigRows; r++ {
		row := got[r*bigDim : (r+1)*bigDim]
		i := int(row[0])
		if i < 0 || i >= bigRows || seen[i] {
			t.Fatalf("row %d starts with %v", r, row[0])
		}
		seen[i] = true
		if want := bigVector(i); row[bigDim-1] != want[bigDim-1] {
			t.Fatalf("row %d: last value %v, want %v", r, row[bigDim-1], want[bigDim-1])
		}
	}
	t.Logf("large reply: Query of %d × %d-dim vectors, %d bytes, %.3fs, from %s", bigRows, bigDim, lg[0].Bytes, lg[0].Seconds, lg[0].Replica)

	// The deadline: DEADLINE_EXCEEDED at the client's deadline, long
	// before the slowed replica would have answered.
	if d := byPhase["deadline"]; len(d) != 1 || d[0].Code != "DEADLINE_EXCEEDED" || d[0].Seconds >= slow.Seconds() {
		t.Errorf("deadline %.1fs with replicas %v slow: %+v", deadline, slow, d)
	} else {
		t.Logf("deadline: %s after %.3fs (timeout %.1fs, replicas delayed %v)", d[0].Code, d[0].Seconds, deadline, slow)
	}

	// The cancel: the call was in flight at l7lb, cancel() took, and
	// C-core reports CANCELLED.
	cn := byPhase["cancel"]
	if res.Cancel.InFlightBefore < 1 || !res.Cancel.CancelReturned || !res.Cancel.Cancelled || len(cn) != 1 || cn[0].Code != "CANCELLED" {
		t.Errorf("cancel: %+v %+v", res.Cancel, cn)
	}
	// ... and the balancer stays healthy: the next calls on the same
	// channel succeed on every replica, and nothing stays in flight.
	after := map[string]int{}
	for _, c := range byPhase["after"] {
		if c.Code != "OK" {
			t.Errorf("after the cancel: %s %s", c.Method, c.Code)
		}
		after[c.Replica]++
	}
	if len(after) != len(replicas) {
		t.Errorf("after the cancel the calls went to %v, want every replica", after)
	}
	var last milvuspb.ShowCollectionsResponse
	readReply("after", &last)
	okStatus("ShowCollections after the cancel", last.GetStatus())
	waitMetric(t, ctx, lb, "l7lb_in_flight_requests 0")
	cancelled := metricLines(t, lb, `l7lb_requests_total{`, `grpc_method="ShowCollections"`)
	t.Logf("after the cancel, l7lb's ShowCollections series:\n%s", strings.Join(cancelled, "\n"))
	if !strings.Contains(strings.Join(cancelled, "\n"), `code="CANCELLED"`) && !strings.Contains(strings.Join(cancelled, "\n"), `code="RESET"`) {
		t.Errorf("l7lb recorded no cancelled or reset ShowCollections")
	}
}

// metricLines returns the /metrics lines that start with prefix and hold
// every one of parts.
func metricLines(t *testing.T, lb *lbtest.Proc, prefix string, parts ...string) []string {
	t.Helper()
	resp, err := http.Get("http://" + lb.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
next:
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// waitMetric polls /metrics until a line equals want (bounded by ctx).
func waitMetric(t *testing.T, ctx context.Context, lb *lbtest.Proc, want string) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	name := strings.Fields(want)[0]
	for {
		ls := metricLines(t, lb, name+" ")
		if len(ls) == 1 && ls[0] == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("l7lb's /metrics never showed %q (last %q)", want, ls)
		case <-tick.C:
		}
	}
}
