package targetgroup

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/balance/leastrequest"
	"github.com/l7lb/l7lb/internal/balance/peakewma"
	"github.com/l7lb/l7lb/internal/balance/roundrobin"
	"github.com/l7lb/l7lb/internal/balance/weightedrandom"
	"github.com/l7lb/l7lb/internal/config"
)

// testGroup has n targets, healthy at once (checks off), 127.0.0.i:1.
func testGroup(t *testing.T, n int, alg config.Algorithm) *Group {
	t.Helper()
	cfg := config.TargetGroup{Name: "ns/svc:1", Algorithm: alg, AnomalyMitigation: alg == config.AlgorithmWeightedRandom}
	for i := 1; i <= n; i++ {
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{Address: fmt.Sprintf("127.0.0.%d", i), Port: 1, Ready: true})
	}
	g := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	t.Cleanup(g.Close)
	return g
}

func (g *Group) target(i int) *Target {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.targets[fmt.Sprintf("127.0.0.%d:1", i)]
}

func TestAlgorithmPicker(t *testing.T) {
	tests := []struct {
		alg  config.Algorithm
		want string
	}{
		{"", fmt.Sprintf("%T", roundrobin.New[*Target](nil))},
		{config.AlgorithmRoundRobin, fmt.Sprintf("%T", roundrobin.New[*Target](nil))},
		{config.AlgorithmLeastOutstanding, fmt.Sprintf("%T", leastrequest.New[*Target](nil, nil))},
		{config.AlgorithmWeightedRandom, fmt.Sprintf("%T", weightedrandom.New[*Target](nil, nil))},
		{config.AlgorithmPeakEWMA, fmt.Sprintf("%T", peakewma.New[*Target](nil, nil))},
	}
	for _, tc := range tests {
		t.Run(string(tc.alg), func(t *testing.T) {
			g := testGroup(t, 3, tc.alg)
			if got := fmt.Sprintf("%T", g.set.Load().picker); got != tc.want {
				t.Errorf("picker %s, want %s", got, tc.want)
			}
			if tc.alg == "" && g.Algorithm() != config.AlgorithmRoundRobin {
				t.Errorf("Algorithm() = %q for an unset algorithm, want round_robin", g.Algorithm())
			}
			// Every algorithm picks among the healthy targets only.
			g.target(2).Hung(errors.New("test: frozen"))
			for k := 0; k < 300; k++ {
				tgt, ok := g.Pick()
				if !ok || tgt == g.target(2) {
					t.Fatalf("pick %d: %v, %v; the hung target must not be picked", k, tgt, ok)
				}
			}
		})
	}
}

// A hung target is ejected at once, not after five failures; at most half
// of a group is ejected, so the second hang in a group of three is only
// reported.
func TestHungEjectsAtOnceWithinHalf(t *testing.T) {
	g := testGroup(t, 3, config.AlgorithmRoundRobin)
	g.target(1).Hung(errors.New("target 127.0.0.1:1 answered nothing, not even a PING"))
	state, reason, _ := g.target(1).State()
	if state != StateUnhealthy || !strings.Contains(reason, reasonEjected) || !strings.Contains(reason, "not even a PING") {
		t.Fatalf("after a hang: %s %q, want unhealthy and ejected with the hang named", state, reason)
	}
	g.target(2).Hung(errors.New("second"))
	if state, _, _ := g.target(2).State(); state != StateHealthy {
		t.Fatalf("a second hang in a group of three ejected it (%s): more than half the group out", state)
	}
}

// A deadline missed at a target counts against it only when another target
// answered the same method since the request started and it did not.
func TestMissedDeadline(t *testing.T) {
	const search, query = "/milvus.proto.milvus.MilvusService/Search", "/milvus.proto.milvus.MilvusService/Query"
	tests := []struct {
		name string
		// setup runs before the misses; started is when each missed
		// request started.
		setup func(g *Group, started time.Time)
		path  string
		eject bool
	}{
		{"others answered the method", func(g *Group, _ time.Time) { g.target(2).Succeeded(MethodSlot(search)) }, search, true},
		{"nobody answered it", func(*Group, time.Time) {}, search, false},
		{"the target answered it too", func(g *Group, _ time.Time) {
			g.target(2).Succeeded(MethodSlot(search))
			g.target(1).Succeeded(MethodSlot(search))
		}, search, false},
		{"others answered another method", func(g *Group, _ time.Time) { g.target(2).Succeeded(MethodSlot(query)) }, search, MethodSlot(query) == MethodSlot(search)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := testGroup(t, 3, config.AlgorithmRoundRobin)
			started := time.Now().Add(-time.Second)
			tc.setup(g, started)
			for k := 0; k < ejectAfter; k++ {
				g.target(1).MissedDeadline(MethodSlot(tc.path), started, tc.path)
			}
			state, reason, _ := g.target(1).State()
			if ejected := state == StateUnhealthy; ejected != tc.eject {
				t.Fatalf("after %d missed deadlines: %s %q; want ejected=%v", ejectAfter, state, reason, tc.eject)
			}
			if tc.eject && !strings.Contains(reason, "deadline exceeded on "+tc.path) {
				t.Errorf("reason %q does not name the missed deadline", reason)
			}
		})
	}
	// Answers from before the request started do not count.
	g := testGroup(t, 3, config.AlgorithmRoundRobin)
	g.target(2).Succeeded(MethodSlot(search))
	for k := 0; k < ejectAfter; k++ {
		g.target(1).MissedDeadline(MethodSlot(search), time.Now().Add(time.Millisecond), search)
	}
	if state, _, _ := g.target(1).State(); state != StateHealthy {
		t.Fatalf("an answer from before the request started counted: %s", state)
	}
}

// A retry goes elsewhere, whatever the algorithm prefers.
func TestPickOtherAvoids(t *testing.T) {
	for _, alg := range []config.Algorithm{config.AlgorithmRoundRobin, config.AlgorithmLeastOutstanding, config.AlgorithmPeakEWMA, config.AlgorithmWeightedRandom} {
		g := testGroup(t, 3, alg)
		avoid := g.target(1)
		// Make avoid the one every load-based algorithm prefers.
		for _, i := range []int{2, 3} {
			for k := 0; k < 5; k++ {
				g.target(i).Meter.Start()
			}
			g.target(i).Meter.Observe(50 * time.Millisecond)
		}
		avoid.Meter.Observe(time.Millisecond)
		for k := 0; k < 200; k++ {
			if tgt, ok := g.PickOther(avoid); !ok || tgt == avoid {
				t.Fatalf("%s: PickOther returned the target to avoid", alg)
			}
		}
	}
	g := testGroup(t, 1, config.AlgorithmLeastOutstanding)
	if tgt, ok := g.PickOther(g.target(1)); !ok || tgt != g.target(1) {
		t.Fatal("PickOther in a group of one must fall back to the only target")
	}
}

// Anomaly mitigation runs for weighted_random groups and dims a target
// that answers slower than its peers.
func TestAnomalyMitigationRuns(t *testing.T) {
	g := testGroup(t, 3, config.AlgorithmWeightedRandom)
	slow := g.target(3)
	deadline := time.Now().Add(5 * time.Second)
	for slow.Meter.Weight() == 1000 {
		if time.Now().After(deadline) {
			t.Fatal("the slow target was not dimmed within 5 s")
		}
		for i := 1; i <= 3; i++ {
			lat := time.Millisecond
			if i == 3 {
				lat = 40 * time.Millisecond
			}
			for k := 0; k < 20; k++ {
				g.target(i).Meter.Observe(lat)
				g.target(i).Succeeded(0)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slow.Meter.Anomalous() || g.target(1).Meter.Weight() != 1000 {
		t.Errorf("slow: weight %d anomalous %v; fast: weight %d", slow.Meter.Weight(), slow.Meter.Anomalous(), g.target(1).Meter.Weight())
	}
}
