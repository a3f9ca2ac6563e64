package metrics

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/listener"
	"github.com/l7lb/l7lb/internal/observe"
	"github.com/l7lb/l7lb/internal/runtime"
)

func rpc(path, status string, target string) *observe.RPC {
	t0 := time.Unix(1000, 0)
	return &observe.RPC{
		Start: t0, TargetStart: t0.Add(time.Millisecond), TargetFirstByte: t0.Add(3 * time.Millisecond), End: t0.Add(5 * time.Millisecond),
		ListenerPort: 443, Rule: "milvus/milvus-demo#0", TargetGroup: "milvus/milvus-demo:19530", Target: target,
		Method: "POST", Path: path, GRPC: true, HTTPStatus: 200, GRPCStatus: status, BytesIn: 10, BytesOut: 20,
	}
}

func TestRequestLabels(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		rpc                   *observe.RPC
		service, method, code string
	}{
		{"milvus method", rpc("/milvus.proto.milvus.MilvusService/Search", "0", "10.0.0.1:19530"), "milvus.proto.milvus.MilvusService", "Search", "OK"},
		{"health", rpc("/grpc.health.v1.Health/Check", "14", "10.0.0.1:19530"), "grpc.health.v1.Health", "Check", "UNAVAILABLE"},
		{"unknown service collapses", rpc("/evil.Service/Random123", "12", "10.0.0.1:19530"), Other, Other, "UNIMPLEMENTED"},
		{"unknown method of a known service collapses", rpc("/milvus.proto.milvus.MilvusService/Nope", "0", "10.0.0.1:19530"), Other, Other, "OK"},
		{"out of range status", rpc("/milvus.proto.milvus.MilvusService/Query", "99", "10.0.0.1:19530"), "milvus.proto.milvus.MilvusService", "Query", "UNKNOWN"},
		{"reset", func() *observe.RPC {
			r := rpc("/milvus.proto.milvus.MilvusService/Insert", "", "10.0.0.1:19530")
			r.Reset, r.ResetBy = 8, "client"
			return r
		}(), "milvus.proto.milvus.MilvusService", "Insert", CodeReset},
		{"rest", func() *observe.RPC {
			r := rpc("/v2/vectordb/collections/list", "", "10.0.0.1:19530")
			r.GRPC, r.HTTPStatus = false, 404
			return r
		}(), "", "", "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Options{Version: "test"})
			m.RPCDone(tc.rpc)
			got := testutil.ToFloat64(m.requests.WithLabelValues("443", tc.rpc.Rule, tc.rpc.TargetGroup, tc.rpc.Target, tc.service, tc.method, tc.code))
			if got != 1 {
				t.Errorf("l7lb_requests_total{grpc_service=%q,grpc_method=%q,code=%q} = %v, want 1", tc.service, tc.method, tc.code, got)
			}
			if n := testutil.CollectAndCount(m.requests); n != 1 {
				t.Errorf("%d request series, want 1", n)
			}
		})
	}
}

func TestValuesAfterRPCs(t *testing.T) {
	m := New(Options{Version: "test"})
	for i := 0; i < 10; i++ {
		status := "0"
		if i%5 == 0 {
			status = "14"
		}
		m.RPCDone(rpc("/milvus.proto.milvus.MilvusService/Search", status, "10.0.0.1:19530"))
	}
	want := `
# HELP l7lb_received_bytes_total Request body bytes received from clients.
# TYPE l7lb_received_bytes_total counter
l7lb_received_bytes_total{grpc_method="Search",grpc_service="milvus.proto.milvus.MilvusService",listener="443",target="10.0.0.1:19530",target_group="milvus/milvus-demo:19530"} 100
`
	if err := testutil.CollectAndCompare(m.received, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("%d duration series", n)
	}
	ts := m.Target("milvus/milvus-demo:19530", "10.0.0.1:19530").Snapshot()
	if ts.Requests != 10 || ts.Errors != 2 || ts.LastErrorCode != "UNAVAILABLE" {
		t.Errorf("target stats %+v", ts)
	}
	if p := ts.Latency.Quantile(0.99); p < 5*time.Millisecond || p > 7*time.Millisecond {
		t.Errorf("p99 %v, want about 5ms", p)
	}
	if c := m.Codes(); c["OK"] != 8 || c["UNAVAILABLE"] != 2 {
		t.Errorf("codes %v", c)
	}
}

type fakeStatus runtime.Status

func (f fakeStatus) Status() runtime.Status { return runtime.Status(f) }

func statusWith(targets ...string) runtime.Status {
	snap := &config.Snapshot{Listeners: []config.Listener{{Port: 443, Rules: []config.Rule{{Name: "milvus/milvus-demo#0"}}}}}
	g := runtime.GroupStatus{Name: "milvus/milvus-demo:19530"}
	for _, a := range targets {
		g.Targets = append(g.Targets, runtime.TargetStatus{Address: a, State: "healthy", InFlight: 2})
	}
	return runtime.Status{Snapshot: snap, Groups: []runtime.GroupStatus{g}}
}

func TestPruneRemovesTargetsThatLeft(t *testing.T) {
	m := New(Options{Version: "test"})
	for _, a := range []string{"10.0.0.1:19530", "10.0.0.2:19530", "10.0.0.3:19530"} {
		m.RPCDone(rpc("/milvus.proto.milvus.MilvusService/Search", "0", a))
		m.Ejected("milvus/milvus-demo:19530", a, "health_check")
	}
	m.RPCDone(rpc("/milvus.proto.milvus.MilvusService/Search", "14", "")) // no target
	for _, tc := range []struct {
		name    string
		targets []string
		want    int // request series left
	}{
		{"all present", []string{"10.0.0.1:19530", "10.0.0.2:19530", "10.0.0.3:19530"}, 4},
		{"one left", []string{"10.0.0.1:19530", "10.0.0.2:19530"}, 3},
		{"all left", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.Prune(statusWith(tc.targets...))
			if n := testutil.CollectAndCount(m.requests); n != tc.want {
				t.Errorf("%d request series, want %d", n, tc.want)
			}
			if n := testutil.CollectAndCount(m.ejections); n != len(tc.targets) {
				t.Errorf("%d ejection series, want %d", n, len(tc.targets))
			}
			if n := len(*m.targets.Load()); n != len(tc.targets) {
				t.Errorf("%d target stats, want %d", n, len(tc.targets))
			}
		})
	}
	// A rule that left takes its series with it.
	m.Prune(runtime.Status{Snapshot: &config.Snapshot{}})
	if n := testutil.CollectAndCount(m.requests); n != 0 {
		t.Errorf("%d request series after the rule left", n)
	}
}

func TestStatusCollector(t *testing.T) {
	m := New(Options{Version: "test"})
	m.Attach(fakeStatus(statusWith("10.0.0.1:19530", "10.0.0.2:19530")))
	want := `
# HELP l7lb_in_flight_requests Requests (streams) forwarded to any target and not finished.
# TYPE l7lb_in_flight_requests gauge
l7lb_in_flight_requests 4
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "l7lb_in_flight_requests"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "l7lb_target_health_state"); err != nil || n != 2*len(TargetStates) {
		t.Errorf("%d health state series (%v)", n, err)
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP l7lb_target_group_targets Targets of a group by state (the ALB's HealthyHostCount and UnHealthyHostCount).
# TYPE l7lb_target_group_targets gauge
l7lb_target_group_targets{state="draining",target_group="milvus/milvus-demo:19530"} 0
l7lb_target_group_targets{state="healthy",target_group="milvus/milvus-demo:19530"} 2
l7lb_target_group_targets{state="initial",target_group="milvus/milvus-demo:19530"} 0
l7lb_target_group_targets{state="unhealthy",target_group="milvus/milvus-demo:19530"} 0
l7lb_target_group_targets{state="unused",target_group="milvus/milvus-demo:19530"} 0
`), "l7lb_target_group_targets"); err != nil {
		t.Error(err)
	}
}

// TestListenerEvents: a listener's connection events land in its
// listener's series (rejections at the connection cap and denials by
// inbound-cidrs included).
func TestListenerEvents(t *testing.T) {
	m := New(Options{Version: "test"})
	var ev listener.Events = m.Listener(443)
	deny, ok := ev.(listener.DenyEvents)
	if !ok {
		t.Fatal("the metrics' listener events do not count denied connections")
	}
	for _, step := range []struct {
		do                            func()
		open, total, rejected, denied float64
	}{
		{ev.ConnOpened, 1, 1, 0, 0},
		{ev.ConnOpened, 2, 2, 0, 0},
		{ev.ConnRejected, 2, 2, 1, 0},
		{ev.ConnClosed, 1, 2, 1, 0},
		{ev.ConnRejected, 1, 2, 2, 0},
		{deny.ConnDenied, 1, 2, 2, 1},
	} {
		step.do()
		open := testutil.ToFloat64(m.conns.WithLabelValues("443"))
		total := testutil.ToFloat64(m.connsTotal.WithLabelValues("443"))
		rejected := testutil.ToFloat64(m.connsRejected.WithLabelValues("443"))
		denied := testutil.ToFloat64(m.connsDenied.WithLabelValues("443"))
		if open != step.open || total != step.total || rejected != step.rejected || denied != step.denied {
			t.Errorf("open %v, total %v, rejected %v, denied %v; want %v, %v, %v, %v", open, total, rejected, denied, step.open, step.total, step.rejected, step.denied)
		}
	}
	for _, name := range []string{"l7lb_client_connections_rejected_total", "l7lb_client_connections_denied_total"} {
		if n, err := testutil.GatherAndCount(m.Registry(), name); err != nil || n != 1 {
			t.Errorf("%d %s series (%v), want 1", n, name, err)
		}
	}
}

func TestHandshakeErrorReason(t *testing.T) {
	for err, want := range map[error]string{
		io.EOF:                 "client_closed",
		os.ErrDeadlineExceeded: "timeout",
		errors.New("tls: client offered only unsupported versions: [301]"):     "protocol_version",
		errors.New("tls: no cipher suite supported by both client and server"): "no_shared_cipher",
		errors.New("tls: first record does not look like a TLS handshake"):     "not_tls",
		errors.New("remote error: tls: bad certificate"):                       "certificate_rejected",
		errors.New("remote error: tls: unknown certificate authority"):         "certificate_rejected",
		errors.New("something new"):                                            "other",
		fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF):                         "client_closed",
		// mutual-authentication verify refusals (errors as internal/mtls
		// and crypto/tls make them).
		errors.New("tls: client didn't provide a certificate"):                                               "client_cert_missing",
		&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}:                                 "client_cert_untrusted",
		&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}:           "client_cert_expired",
		&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}}: "client_cert_invalid",
	} {
		if got := HandshakeErrorReason(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
}

func TestReloadsAndBuildInfo(t *testing.T) {
	m := New(Options{Version: "v9"})
	m.Reloaded(true, time.Unix(1700000000, 0))
	m.Reloaded(false, time.Unix(1700000100, 0))
	if v := testutil.ToFloat64(m.reloads.WithLabelValues("failure")); v != 1 {
		t.Errorf("failures %v", v)
	}
	if v := testutil.ToFloat64(m.lastReloadOK); v != 0 {
		t.Errorf("last reload successful %v", v)
	}
	if v := testutil.ToFloat64(m.lastReloadTime); v != 1700000000 {
		t.Errorf("last success %v", v)
	}
	if n, _ := testutil.GatherAndCount(m.Registry(), "l7lb_build_info"); n != 1 {
		t.Errorf("build info series %d", n)
	}
}

func TestLatencyBuckets(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, 3, 4, 5, 6, 7, 100, 1000, time.Millisecond, 1500 * time.Microsecond, time.Second, time.Hour} {
		i := latencyBucket(d)
		if ub := LatencyUpperBound(i); ub < d || (i > 1 && LatencyUpperBound(i-1) >= d) {
			t.Errorf("%v in bucket %d (upper bound %v, previous %v)", d, i, ub, LatencyUpperBound(i-1))
		}
	}
}
