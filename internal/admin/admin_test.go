package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/metrics"
	"github.com/l7lb/l7lb/internal/observe"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
)

type fakeSource struct{ st runtime.Status }

func (f *fakeSource) Status() runtime.Status { return f.st }

type fixture struct {
	srv   *Server
	http  *httptest.Server
	m     *metrics.Metrics
	src   *fakeSource
	arn   string
	store *certstore.Store
}

func newFixture(t *testing.T, pprof bool) *fixture {
	t.Helper()
	ca, err := pki.NewCA("admin test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"milvus-demo.milvus.io"}, nil, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	store, err := certstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := store.Import(leaf.CertPEM(), ca.CertPEM(), leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	snap := &config.Snapshot{
		Listeners: []config.Listener{{Port: 443, Protocol: config.ProtocolHTTPS, CertificateARNs: []string{c.ARN},
			Rules: []config.Rule{{Name: "milvus/milvus-demo#0", Host: "milvus-demo.milvus.io", Path: "/", PathType: config.PathPrefix, TargetGroup: "milvus/milvus-demo:19530"}}}},
		TargetGroups: []config.TargetGroup{{Name: "milvus/milvus-demo:19530"}},
	}
	src := &fakeSource{st: runtime.Status{
		Snapshot:  snap,
		Listeners: []runtime.ListenerStatus{{Port: 443, Protocol: "HTTPS", Address: "127.0.0.1:8443", CertificateARNs: []string{c.ARN}, Rules: 1}},
		Groups: []runtime.GroupStatus{{Name: "milvus/milvus-demo:19530", Protocol: "HTTP", ProtocolVersion: "GRPC", Algorithm: "weighted_random", Targets: []runtime.TargetStatus{
			{Address: "10.0.0.1:19530", State: "healthy", InFlight: 1, LatencyEWMAMs: 12.5, Weight: 1},
			{Address: "10.0.0.2:19530", State: "unhealthy", Reason: "Target.FailedHealthChecks", LatencyEWMAMs: 300, Weight: 0.25, Anomalous: true},
		}}},
	}}
	m := metrics.New(metrics.Options{Version: "test"})
	m.Attach(src)
	s := New(Options{Certs: store, Stats: m, Metrics: m.Handler(), Reloads: m, PProf: pprof, Version: "test", Classes: []string{"alb"}})
	s.Attach(src)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return &fixture{srv: s, http: hs, m: m, src: src, arn: c.ARN, store: store}
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.http.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	f := newFixture(t, false)
	t0 := time.Now()
	for i := 0; i < 20; i++ {
		f.m.RPCDone(&observe.RPC{Start: t0, End: t0.Add(2 * time.Millisecond), ListenerPort: 443, Rule: "milvus/milvus-demo#0",
			TargetGroup: "milvus/milvus-demo:19530", Target: "10.0.0.1:19530", GRPC: true, Path: "/milvus.proto.milvus.MilvusService/Search", GRPCStatus: "0"})
	}
	f.m.RPCDone(&observe.RPC{Start: t0, End: t0, ListenerPort: 443, TargetGroup: "milvus/milvus-demo:19530", Target: "10.0.0.1:19530", GRPC: true, GRPCStatus: "14", Error: "l7lb: target gone"})
	f.srv.sampler.tick(t0)
	f.srv.sampler.tick(t0.Add(time.Second))
	f.srv.RecordReload(true, nil)

	for _, tc := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/healthz", 200, []string{"ok"}},
		{"/metrics", 200, []string{"l7lb_requests_total{", `l7lb_target_health_state{state="unhealthy",target="10.0.0.2:19530"`, "l7lb_build_info", "l7lb_config_reloads_total{result=\"success\"} 1",
			`l7lb_target_group_info{algorithm="weighted_random",target_group="milvus/milvus-demo:19530"} 1`,
			`l7lb_target_latency_ewma_seconds{target="10.0.0.1:19530",target_group="milvus/milvus-demo:19530"} 0.0125`,
			`l7lb_target_weight{target="10.0.0.2:19530",target_group="milvus/milvus-demo:19530"} 0.25`,
			`l7lb_target_anomalous{target="10.0.0.2:19530",target_group="milvus/milvus-demo:19530"} 1`,
			"l7lb_target_hangs_total "}},
		{"/api/v1/config", 200, []string{`"listeners"`, f.arn, `"targetGroups"`}},
		{"/api/v1/listeners", 200, []string{`"address": "127.0.0.1:8443"`}},
		{"/api/v1/rules", 200, []string{`"host": "milvus-demo.milvus.io"`, `"targetGroup": "milvus/milvus-demo:19530"`}},
		{"/api/v1/targetgroups", 200, []string{`"state": "unhealthy"`, `"reason": "Target.FailedHealthChecks"`, `"inFlight": 1`, `"lastErrorCode": "UNAVAILABLE"`, `"lastError": "l7lb: target gone"`, `"lastMinute"`,
			`"algorithm": "weighted_random"`, `"latencyEwmaMs": 12.5`, `"weight": 0.25`, `"anomalous": true`}},
		{"/api/v1/certificates", 200, []string{`"dnsNames": [`, "milvus-demo.milvus.io", `"notAfter"`, `"443 (default)"`, `"daysLeft": 0`}},
		{"/api/v1/ingresses", 200, []string{`"name": "milvus/milvus-demo"`, `"class": "alb"`, `"ports": [`}},
		{"/api/v1/reload", 200, []string{`"ok": true`}},
		{"/api/v1/dashboard", 200, []string{`"series"`, `"code": "UNAVAILABLE"`, `"certificates"`, `"algorithm": "weighted_random"`, `"latencyEwmaMs": 300`}},
		{"/", 200, []string{"<title>l7lb</title>", "app.js"}},
		// The script reads the balancing fields by their JSON names.
		{"/app.js", 200, []string{"api/v1/dashboard", "g.algorithm", "t.inFlight", "t.latencyEwmaMs", "t.weight", "t.anomalous"}},
		{"/debug/pprof/", 404, nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			status, body := f.get(t, tc.path)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("lacks %q:\n%s", w, body)
				}
			}
			if strings.Contains(body, "PRIVATE KEY") {
				t.Errorf("%s shows a private key", tc.path)
			}
		})
	}
}

// TestNoPrivateKeys reads every JSON endpoint of a server whose store
// holds the served certificate's key: no key material appears.
func TestNoPrivateKeys(t *testing.T) {
	f := newFixture(t, false)
	for _, p := range []string{"/api/v1/config", "/api/v1/certificates", "/api/v1/dashboard", "/api/v1/listeners", "/api/v1/targetgroups"} {
		_, body := f.get(t, p)
		for _, bad := range []string{"PRIVATE KEY", "privateKey", "PrivateKey", "-----BEGIN"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
}

func TestReadyAndReload(t *testing.T) {
	f := newFixture(t, true)
	for _, tc := range []struct {
		ready bool
		want  int
	}{{false, 503}, {true, 200}, {false, 503}} {
		f.srv.SetReady(tc.ready)
		if status, _ := f.get(t, "/readyz"); status != tc.want {
			t.Errorf("ready=%v: /readyz %d, want %d", tc.ready, status, tc.want)
		}
	}
	f.srv.RecordReload(true, nil)
	f.srv.RecordReload(false, errors.New("listener 443: certificate arn:x: not found"))
	_, body := f.get(t, "/api/v1/reload")
	var info ReloadInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatal(err)
	}
	if info.OK || !strings.Contains(info.Error, "not found") || info.LastSuccess.IsZero() {
		t.Errorf("reload info %+v", info)
	}
	if status, _ := f.get(t, "/debug/pprof/"); status != 200 {
		t.Errorf("pprof with the flag: %d", status)
	}
}

func TestSamplerForgetsTargetsThatLeft(t *testing.T) {
	f := newFixture(t, false)
	now := time.Now()
	for i := 0; i < window+5; i++ {
		f.srv.sampler.tick(now.Add(time.Duration(i) * time.Second))
	}
	pts, _ := f.srv.sampler.target("milvus/milvus-demo:19530", "10.0.0.1:19530")
	if len(pts) != window-1 {
		t.Errorf("%d points, want %d (ring bounded)", len(pts), window-1)
	}
	f.src.st.Groups[0].Targets = f.src.st.Groups[0].Targets[:1]
	f.srv.sampler.tick(now.Add(100 * time.Second))
	if _, ok := f.srv.sampler.rings[[2]string{"milvus/milvus-demo:19530", "10.0.0.2:19530"}]; ok {
		t.Error("the ring of a target that left is kept")
	}
}

func TestDashboardHasNoExternalResources(t *testing.T) {
	f := newFixture(t, false)
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		_, body := f.get(t, p)
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(strings.ReplaceAll(body, "http://www.w3.org/2000/svg", ""), bad) {
				t.Errorf("%s refers to %q", p, bad)
			}
		}
	}
}
