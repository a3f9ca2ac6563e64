package targetgroup

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/config"
)

// TestSlowStart: a target that just became healthy, next to settled ones,
// gets a share that grows with its time in slow start.
func TestSlowStart(t *testing.T) {
	g := New(config.TargetGroup{Name: "ns/svc:1", SlowStart: time.Hour, Endpoints: []config.Endpoint{
		{Address: "127.0.0.1", Port: 1, Ready: true}, {Address: "127.0.0.2", Port: 1, Ready: true},
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	defer g.Close()
	// Checks are off (no interval): both are healthy at once. Make the
	// first an old hand and the second new, at several points of its ramp.
	share := func(into time.Duration) float64 {
		g.mu.Lock()
		old, young := g.targets["127.0.0.1:1"], g.targets["127.0.0.2:1"]
		old.healthyAt.Store(time.Now().Add(-2 * time.Hour).UnixNano())
		young.healthyAt.Store(time.Now().Add(-into).UnixNano())
		g.rebuildLocked()
		g.mu.Unlock()
		n := 0
		for i := 0; i < 20000; i++ {
			if tgt, _ := g.Pick(); tgt == young {
				n++
			}
		}
		return float64(n) / 20000
	}
	early, middle, late, done := share(6*time.Minute), share(30*time.Minute), share(54*time.Minute), share(2*time.Hour)
	t.Logf("young target's share at 10%%, 50%%, 90%% and past its ramp: %.3f %.3f %.3f %.3f", early, middle, late, done)
	if !(early < 0.15 && early < middle && middle < late && late <= done && done > 0.45) {
		t.Fatalf("share does not ramp up: %.3f %.3f %.3f %.3f", early, middle, late, done)
	}
}
