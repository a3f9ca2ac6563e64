package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/balance/load"
	"github.com/l7lb/l7lb/internal/config"
)

// TestStatusReportsBalancing: each group's status names the algorithm in
// effect, and each target's shows what its meter holds (in-flight, EWMA
// latency, weight, anomaly), set here through the meter's own methods.
func TestStatusReportsBalancing(t *testing.T) {
	tests := []struct {
		name      string
		algorithm config.Algorithm
		meter     func(m *load.Meter)
		wantAlg   string
		want      TargetStatus // only the balancing fields are compared
	}{
		{"unmeasured, algorithm not configured", "", func(*load.Meter) {}, "round_robin",
			TargetStatus{Weight: 1}},
		// The peak replaces the average, up to twice it per answer and
		// once a millisecond.
		{"latency is the peak of the answers", config.AlgorithmPeakEWMA, func(m *load.Meter) {
			m.Observe(10 * time.Millisecond)
			nextMillisecond()
			m.Observe(15 * time.Millisecond)
		}, "peak_ewma", TargetStatus{LatencyEWMAMs: 15, Weight: 1}},
		{"a peak at most doubles the latency", config.AlgorithmPeakEWMA, func(m *load.Meter) {
			m.Observe(10 * time.Millisecond)
			nextMillisecond() // the peak rises once a millisecond at most
			m.Observe(40 * time.Millisecond)
		}, "peak_ewma", TargetStatus{LatencyEWMAMs: 20, Weight: 1}},
		{"dimmed and anomalous", config.AlgorithmWeightedRandom, func(m *load.Meter) {
			m.Observe(25 * time.Millisecond)
			m.SetWeight(250)
			m.SetAnomalous(true)
		}, "weighted_random", TargetStatus{LatencyEWMAMs: 25, Weight: 0.25, Anomalous: true}},
		{"requests in flight", config.AlgorithmLeastOutstanding, func(m *load.Meter) {
			m.Start()
			m.Start()
			m.Start()
			m.Done()
		}, "least_outstanding_requests", TargetStatus{InFlight: 2, Weight: 1}},
	}
	// One group per case, all in one snapshot. Health checks are off (no
	// interval), so nothing dials the targets and nothing else moves the
	// meters; anomaly mitigation is off, so the weight set stays.
	snap := &config.Snapshot{}
	for i, tc := range tests {
		snap.TargetGroups = append(snap.TargetGroups, config.TargetGroup{
			Name: fmt.Sprintf("ns/case%d:80", i), Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC, Algorithm: tc.algorithm,
			Endpoints: []config.Endpoint{{Address: "192.0.2.1", Port: 80, Ready: true}}})
	}
	rt := New(Options{Log: slog.New(slog.DiscardHandler), Certs: noCerts{}})
	defer rt.Shutdown(context.Background())
	if err := rt.Apply(snap); err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		targets := rt.Group(fmt.Sprintf("ns/case%d:80", i)).Targets()
		if len(targets) != 1 {
			t.Fatalf("%s: %d targets, want 1", tc.name, len(targets))
		}
		tc.meter(&targets[0].Meter)
	}
	st := rt.Status()
	if len(st.Groups) != len(tests) {
		t.Fatalf("%d groups in the status, want %d", len(st.Groups), len(tests))
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := st.Groups[i]
			if g.Algorithm != tc.wantAlg {
				t.Errorf("algorithm %q, want %q", g.Algorithm, tc.wantAlg)
			}
			if len(g.Targets) != 1 {
				t.Fatalf("%d targets, want 1", len(g.Targets))
			}
			got := g.Targets[0]
			if got.InFlight != tc.want.InFlight || got.LatencyEWMAMs != tc.want.LatencyEWMAMs || got.Weight != tc.want.Weight || got.Anomalous != tc.want.Anomalous {
				t.Errorf("in flight %d, latency %v ms, weight %v, anomalous %v; want %d, %v ms, %v, %v",
					got.InFlight, got.LatencyEWMAMs, got.Weight, got.Anomalous, tc.want.InFlight, tc.want.LatencyEWMAMs, tc.want.Weight, tc.want.Anomalous)
			}
		})
	}
}

// nextMillisecond waits until the meters' clock has moved on (bounded: it
// moves within a millisecond or two).
func nextMillisecond() {
	start := load.Now()
	for i := 0; i < 1000 && load.Now() == start; i++ {
		time.Sleep(100 * time.Microsecond)
	}
}
