package proxy

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/observe"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// records hands each finished RPC's record to the test. Observed writes the
// record after the handler returns, which can be after the client has read
// the whole response, so the test waits for it instead of reading a list.
type records chan observe.RPC

func (r records) RPCDone(rec *observe.RPC) { r <- *rec }

func (r records) next(t *testing.T) observe.RPC {
	t.Helper()
	select {
	case rec := <-r:
		return rec
	case <-time.After(5 * time.Second):
		t.Fatal("no RPC record within 5s")
		return observe.RPC{}
	}
}

func TestObservedHTTP1(t *testing.T) {
	var traceMu sync.Mutex
	var gotTrace string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			return // the group's health check, which runs once at start
		}
		traceMu.Lock()
		gotTrace = r.Header.Get("Traceparent")
		traceMu.Unlock()
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"code":0,"data":[]}`)
	}))
	defer backend.Close()
	host, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	g := targetgroup.New(config.TargetGroup{Name: "milvus/milvus-demo:19530", Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC,
		Endpoints: []config.Endpoint{{Address: host, Port: p, Ready: true}},
		// Checks far apart: this test is about the request path.
		HealthCheck: config.HealthCheck{Protocol: config.ProtocolHTTP, Path: "/", Interval: time.Hour, Timeout: time.Second,
			HealthyThreshold: 2, UnhealthyThreshold: 2, SuccessCodes: []config.CodeRange{{Lo: 200, Hi: 399}}}}, slog.New(slog.DiscardHandler), nil)
	defer g.Close()
	table := route.Compile([]config.Rule{{Name: "milvus/milvus-demo#0", Host: "milvus.example", Path: "/", PathType: config.PathPrefix, TargetGroup: g.Name()}},
		func(string) *targetgroup.Group { return g })
	recs := make(records, 4)
	srv := httptest.NewServer(Observed(NewHandler(80, false, func() *Table { return table }, slog.New(slog.DiscardHandler)), 80, recs))
	defer srv.Close()

	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name, host, traceparent string
		status                  int
		check                   func(t *testing.T, rec observe.RPC)
	}{
		{"forwarded, trace added", "milvus.example", "", 200, func(t *testing.T, rec observe.RPC) {
			if rec.Rule != "milvus/milvus-demo#0" || rec.TargetGroup != g.Name() || rec.Target != backend.Listener.Addr().String() {
				t.Errorf("rule/group/target %q %q %q", rec.Rule, rec.TargetGroup, rec.Target)
			}
			if rec.BytesIn != 7 || rec.BytesOut != 20 || rec.TargetStart.IsZero() || rec.TargetFirstByte.IsZero() {
				t.Errorf("bytes %d/%d, target times %v %v", rec.BytesIn, rec.BytesOut, rec.TargetStart, rec.TargetFirstByte)
			}
			if !observe.ValidTraceParent(rec.TraceParent) || gotTrace != rec.TraceParent {
				t.Errorf("traceparent logged %q, upstream %q", rec.TraceParent, gotTrace)
			}
		}},
		{"forwarded, trace kept", "milvus.example", incoming, 200, func(t *testing.T, rec observe.RPC) {
			if rec.TraceParent != incoming || gotTrace != incoming {
				t.Errorf("traceparent logged %q, upstream %q", rec.TraceParent, gotTrace)
			}
		}},
		{"no rule", "other.example", "", 404, func(t *testing.T, rec observe.RPC) {
			if rec.Rule != "" || rec.Target != "" || !strings.Contains(rec.Error, "no rule for host") {
				t.Errorf("rule %q target %q error %q", rec.Rule, rec.Target, rec.Error)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/v2/vectordb/collections/list", strings.NewReader(`{"a":1}`))
			req.Host = tc.host
			if tc.traceparent != "" {
				req.Header.Set("Traceparent", tc.traceparent)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rec := recs.next(t)
			traceMu.Lock()
			defer traceMu.Unlock()
			if resp.StatusCode != tc.status || rec.HTTPStatus != tc.status || rec.ListenerPort != 80 || rec.End.Before(rec.Start) {
				t.Errorf("status %d, recorded %d, port %d", resp.StatusCode, rec.HTTPStatus, rec.ListenerPort)
			}
			tc.check(t, rec)
		})
	}
}
