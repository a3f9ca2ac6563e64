package metrics

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/balance/load"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/frameio"
	"github.com/l7lb/l7lb/internal/runtime"
	"github.com/l7lb/l7lb/internal/upstream"
)

// TestBalancingGauges: the per-target load gauges and the group info
// metric show what the running groups' meters hold. The groups are real
// (a runtime with health checks off, so nothing dials the targets and
// only the test moves the meters), and the meters are set through their
// own methods, so the whole path meter → runtime status → scrape is
// covered.
func TestBalancingGauges(t *testing.T) {
	const weighted, plain = "ns/weighted:19530", "ns/plain:19530"
	ep := func(ip string) config.Endpoint { return config.Endpoint{Address: ip, Port: 19530, Ready: true} }
	rt := runtime.New(runtime.Options{Log: slog.New(slog.DiscardHandler)})
	defer rt.Shutdown(context.Background())
	err := rt.Apply(&config.Snapshot{TargetGroups: []config.TargetGroup{
		// Anomaly mitigation stays off: its detector would overwrite the
		// weights and judgements set below.
		{Name: weighted, Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC, Algorithm: config.AlgorithmWeightedRandom,
			Endpoints: []config.Endpoint{ep("192.0.2.1"), ep("192.0.2.2"), ep("192.0.2.3")}},
		{Name: plain, Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC, Endpoints: []config.Endpoint{ep("192.0.2.4")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]func(m *load.Meter){
		// 192.0.2.1 never answered: no latency series, full weight.
		"192.0.2.1:19530": func(*load.Meter) {},
		"192.0.2.2:19530": func(m *load.Meter) {
			m.Observe(40 * time.Millisecond)
			m.Start()
			m.Start()
		},
		"192.0.2.3:19530": func(m *load.Meter) {
			m.Observe(250 * time.Millisecond)
			m.SetWeight(10)
			m.SetAnomalous(true)
		},
		"192.0.2.4:19530": func(m *load.Meter) { m.Observe(5 * time.Millisecond) },
	}
	for _, g := range []string{weighted, plain} {
		for _, tgt := range rt.Group(g).Targets() {
			set[tgt.Addr](&tgt.Meter)
			delete(set, tgt.Addr)
		}
	}
	if len(set) != 0 {
		t.Fatalf("targets not in the groups: %v", set)
	}
	m := New(Options{Version: "test"})
	m.Attach(rt)

	for _, tc := range []struct{ name, want string }{
		{"l7lb_target_group_info", `
# HELP l7lb_target_group_info Always 1; the algorithm label is the group's balancing algorithm.
# TYPE l7lb_target_group_info gauge
l7lb_target_group_info{algorithm="round_robin",target_group="ns/plain:19530"} 1
l7lb_target_group_info{algorithm="weighted_random",target_group="ns/weighted:19530"} 1
`},
		{"l7lb_target_in_flight_requests", `
# HELP l7lb_target_in_flight_requests Requests (streams) forwarded to a target and not finished.
# TYPE l7lb_target_in_flight_requests gauge
l7lb_target_in_flight_requests{target="192.0.2.1:19530",target_group="ns/weighted:19530"} 0
l7lb_target_in_flight_requests{target="192.0.2.2:19530",target_group="ns/weighted:19530"} 2
l7lb_target_in_flight_requests{target="192.0.2.3:19530",target_group="ns/weighted:19530"} 0
l7lb_target_in_flight_requests{target="192.0.2.4:19530",target_group="ns/plain:19530"} 0
`},
		{"l7lb_target_latency_ewma_seconds", `
# HELP l7lb_target_latency_ewma_seconds Peak-EWMA of a target's time to response headers, as last updated; absent until the target answered once.
# TYPE l7lb_target_latency_ewma_seconds gauge
l7lb_target_latency_ewma_seconds{target="192.0.2.2:19530",target_group="ns/weighted:19530"} 0.04
l7lb_target_latency_ewma_seconds{target="192.0.2.3:19530",target_group="ns/weighted:19530"} 0.25
l7lb_target_latency_ewma_seconds{target="192.0.2.4:19530",target_group="ns/plain:19530"} 0.005
`},
		{"l7lb_target_weight", `
# HELP l7lb_target_weight A target's share relative to a healthy peer, 0 to 1; below 1 while anomaly mitigation dims it.
# TYPE l7lb_target_weight gauge
l7lb_target_weight{target="192.0.2.1:19530",target_group="ns/weighted:19530"} 1
l7lb_target_weight{target="192.0.2.2:19530",target_group="ns/weighted:19530"} 1
l7lb_target_weight{target="192.0.2.3:19530",target_group="ns/weighted:19530"} 0.01
l7lb_target_weight{target="192.0.2.4:19530",target_group="ns/plain:19530"} 1
`},
		{"l7lb_target_anomalous", `
# HELP l7lb_target_anomalous 1 while anomaly mitigation judges a target worse than its peers, else 0.
# TYPE l7lb_target_anomalous gauge
l7lb_target_anomalous{target="192.0.2.1:19530",target_group="ns/weighted:19530"} 0
l7lb_target_anomalous{target="192.0.2.2:19530",target_group="ns/weighted:19530"} 0
l7lb_target_anomalous{target="192.0.2.3:19530",target_group="ns/weighted:19530"} 1
l7lb_target_anomalous{target="192.0.2.4:19530",target_group="ns/plain:19530"} 0
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(tc.want), tc.name); err != nil {
				t.Error(err)
			}
		})
	}
}

// silentTarget is an h2c target that takes requests and sends nothing
// after its SETTINGS: not an answer, not a PING acknowledgement, as a
// frozen process whose kernel still accepts.
func silentTarget(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
			return
		}
		fr := http2.NewFramer(c, br)
		fr.WriteSettings()
		for {
			if _, err := fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

type nopSink struct{}

func (nopSink) Headers([]hpack.HeaderField, bool, *frameio.Batch) {}
func (nopSink) Data([]byte, bool, *frameio.Batch)                 {}
func (nopSink) Reset(http2.ErrCode, error, bool)                  {}
func (nopSink) Sent(int)                                          {}

// TestHangsCounter: a target that holds a request and answers nothing
// counts once in l7lb_target_hangs_total when upstream reports it hung
// (about HangProbeAfter+HangTimeout after the request).
func TestHangsCounter(t *testing.T) {
	m := New(Options{Version: "test"})
	hangs := func() float64 {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "l7lb_target_hangs_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no l7lb_target_hangs_total")
		return 0
	}
	before := hangs()
	hung := make(chan error, 1)
	cs := upstream.NewConns(silentTarget(t), false, nil)
	cs.OnHang = func(err error) {
		select {
		case hung <- err:
		default: // only the first report matters; never block upstream's timer
		}
	}
	defer cs.Abort()
	encode := func(_ *upstream.Stream, w *frameio.Writer) {
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/svc/M"}, {":authority", "t"}} {
			w.EncodeField(f[0], f[1])
		}
	}
	if err := cs.Open(new(upstream.Stream), nopSink{}, encode, true, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-hung:
		t.Logf("reported: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the silent target was never reported hung")
	}
	if got := hangs(); got != before+1 {
		t.Errorf("l7lb_target_hangs_total = %v after one hang, want %v", got, before+1)
	}
}
