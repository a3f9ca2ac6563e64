package peakewma

import (
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/balance/load"
)

func newSet(n int) ([]int, []*load.Meter) {
	items := make([]int, n)
	meters := make([]*load.Meter, n)
	for i := range items {
		items[i] = i
		meters[i] = new(load.Meter)
	}
	return items, meters
}

// shares picks n times, holding each pick "in flight" for hold picks (a
// closed loop of hold concurrent requests), with target latencies lat:
// each request completes with that latency observed.
func shares(p *Picker[int], meters []*load.Meter, lat []time.Duration, n, hold int) []int {
	counts := make([]int, len(meters))
	var queue []int
	for k := 0; k < n; k++ {
		i, ok := p.Pick()
		if !ok {
			panic("no pick")
		}
		counts[i]++
		meters[i].Start()
		queue = append(queue, i)
		if len(queue) > hold {
			j := queue[0]
			queue = queue[1:]
			meters[j].Observe(lat[j])
			meters[j].Done()
		}
	}
	for _, j := range queue {
		meters[j].Observe(lat[j])
		meters[j].Done()
	}
	return counts
}

func TestEmptyAndSingle(t *testing.T) {
	if _, ok := New[int](nil, nil).Pick(); ok {
		t.Fatal("empty picker picked")
	}
	items, meters := newSet(1)
	for k := 0; k < 10; k++ {
		if i, ok := New(items, meters).Pick(); !ok || i != 0 {
			t.Fatalf("single target: got %d, %v", i, ok)
		}
	}
}

// Equal targets split evenly: ties (all unmeasured, then all equal) go
// either way at random.
func TestEqualTargetsSplitEvenly(t *testing.T) {
	items, meters := newSet(3)
	p := New(items, meters)
	lat := []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	c := shares(p, meters, lat, 30000, 8)
	for i, n := range c {
		if n < 9000 || n > 11000 {
			t.Errorf("target %d got %d of 30000 picks, want 10000 ± 10%% (%v)", i, n, c)
		}
	}
}

// cheaper's three regimes, by how far apart the two latencies are.
func TestCheaper(t *testing.T) {
	meter := func(lat time.Duration, held int) *load.Meter {
		m := new(load.Meter)
		if lat > 0 {
			m.Observe(lat)
		}
		for i := 0; i < held; i++ {
			m.Start()
		}
		return m
	}
	ms := time.Millisecond
	tests := []struct {
		name       string
		a, b       *load.Meter
		aIsCheaper bool
	}{
		// More than Dominated apart: the faster wins whatever both hold.
		{"a 20 ms target holding nothing loses to a 3 ms one holding 16", meter(20*ms, 0), meter(3*ms, 16), false},
		{"a 3 ms target holding 16 beats a 20 ms one holding nothing", meter(3*ms, 16), meter(20*ms, 0), true},
		// Within Alike: the one holding fewer wins, latency aside.
		{"alike: 1.8 ms holding 3 beats 1 ms holding 4", meter(1800*time.Microsecond, 3), meter(ms, 4), true},
		{"alike: 1 ms holding 4 loses to 1.8 ms holding 3", meter(ms, 4), meter(1800*time.Microsecond, 3), false},
		{"alike and holding as many: a tie keeps b", meter(ms, 2), meter(ms, 2), false},
		// Between: latency × (held + 1).
		{"3× apart: 3 ms holding 1 (6) beats 1 ms holding 6 (7)", meter(3*ms, 1), meter(ms, 6), true},
		{"3× apart: 3 ms holding 2 (9) loses to 1 ms holding 6 (7)", meter(3*ms, 2), meter(ms, 6), false},
		// Unmeasured: idle is tried first; holding one, it waits.
		{"an unmeasured idle target is tried", meter(0, 0), meter(ms, 0), true},
		{"an unmeasured target holding a request is not sent another", meter(0, 1), meter(20*ms, 16), false},
	}
	for _, tc := range tests {
		if got := cheaper(tc.a, tc.b, load.Now()); got != tc.aIsCheaper {
			t.Errorf("%s: cheaper = %v, want %v", tc.name, got, tc.aIsCheaper)
		}
	}
}

// A target twenty times slower than its peers gets next to nothing: its
// first slow answer prices it out.
func TestSlowTargetGetsLittle(t *testing.T) {
	items, meters := newSet(3)
	p := New(items, meters)
	lat := []time.Duration{time.Millisecond, time.Millisecond, 20 * time.Millisecond}
	shares(p, meters, lat, 300, 8) // warm-up: every target measured
	c := shares(p, meters, lat, 30000, 8)
	if frac := float64(c[2]) / 30000; frac > 0.01 {
		t.Errorf("the slow target got %.2f%% of picks (%v), want under 1%%", 100*frac, c)
	}
}

// A new target is tried once, and gets no second request before its first
// answer (the penalty), so a target that turns out slow costs one request.
func TestNewTargetMeasuredBeforeLoaded(t *testing.T) {
	items, meters := newSet(2)
	meters[0].Observe(time.Millisecond)
	meters[0].Start() // the known target holds 4 requests: cost 5 ms
	meters[0].Start()
	meters[0].Start()
	meters[0].Start()
	p := New(items, meters)
	got := map[int]int{}
	for k := 0; k < 100; k++ {
		i, _ := p.Pick()
		got[i]++
		if i == 1 {
			meters[1].Start() // never answers
		}
	}
	if got[1] != 1 {
		t.Errorf("the unmeasured target got %d of 100 picks while its first request was out, want exactly 1", got[1])
	}
}

// A slow target is never starved of the requests that show it recovered:
// its average decays while it gets nothing, it is tried again, and once
// its answers are fast it earns its share back.
func TestRecoveredTargetEarnsShareBack(t *testing.T) {
	items, meters := newSet(3)
	p := New(items, meters)
	slow := []time.Duration{time.Millisecond, time.Millisecond, 20 * time.Millisecond}
	shares(p, meters, slow, 3000, 8)
	// The slow target recovers. Two decay times later its average has
	// fallen below its peers' cost with requests in flight, so it is
	// tried, answers fast, and its share comes back.
	time.Sleep(2 * load.DecayTime)
	fast := []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	var c []int
	for round := 0; round < 20; round++ {
		c = shares(p, meters, fast, 3000, 8)
		if c[2] > 3000/5 {
			return
		}
		time.Sleep(load.DecayTime / 10) // the clock has millisecond steps
	}
	t.Errorf("the recovered target got %d of the last 3000 picks (%v); want its share back (> 20%%)", c[2], c)
}

func BenchmarkPick(b *testing.B) {
	items, meters := newSet(3)
	for _, m := range meters {
		m.Observe(time.Millisecond)
	}
	p := New(items, meters)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Pick()
		}
	})
}
