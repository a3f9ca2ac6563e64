package load

import (
	"math"
	"slices"
	"testing"
	"time"
)

// nextMillisecond waits until the meters' clock has moved on, so that
// the next observation is in a new millisecond. Bounded: the clock
// moves within a millisecond or two however busy the machine is.
func nextMillisecond(t *testing.T) {
	t.Helper()
	start := nowMillis()
	for i := 0; i < 1000 && nowMillis() == start; i++ {
		time.Sleep(100 * time.Microsecond)
	}
	if nowMillis() == start {
		t.Fatal("the meters' clock did not move in 100ms of waiting")
	}
}

func TestObservePeakAndDecay(t *testing.T) {
	var m Meter
	if _, ok := m.Latency(); ok {
		t.Fatal("a new meter claims a latency")
	}
	m.Observe(2 * time.Millisecond)
	if d, _ := m.Latency(); d != 2*time.Millisecond {
		t.Fatalf("first observation: %v, want 2ms", d)
	}
	// A higher latency replaces the average at once (the peak), up to
	// twice it per answer: a stray slow answer doubles the price, a
	// target that really slowed down gets there within a few answers.
	nextMillisecond(t)
	m.Observe(3 * time.Millisecond)
	if d, _ := m.Latency(); d != 3*time.Millisecond {
		t.Fatalf("after a peak under 2×: %v, want 3ms", d)
	}
	var steps []time.Duration
	for i := 0; i < 4; i++ {
		nextMillisecond(t)
		m.Observe(20 * time.Millisecond)
		d, _ := m.Latency()
		steps = append(steps, d)
	}
	if want := []time.Duration{6 * time.Millisecond, 12 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}; !slices.Equal(steps, want) {
		t.Fatalf("a target slowed to 20 ms: averages %v, want %v", steps, want)
	}
	// A lower one in the same millisecond moves it little or not at all:
	// the average follows time, not the number of requests.
	for i := 0; i < 1000; i++ {
		m.Observe(time.Millisecond)
	}
	if d, _ := m.Latency(); d < 15*time.Millisecond {
		t.Fatalf("1000 fast answers at once pulled the average to %v; it must move with time", d)
	}
	n, sum := m.Observed()
	if n != 1006 || sum != 1085*time.Millisecond {
		t.Fatalf("Observed() = %d, %v; want 1006, 1085ms", n, sum)
	}
}

// The peak rises once a millisecond at most: the requests a paused
// target held all answer late in the same instant, and count as one
// peak, not as one doubling each.
func TestPeakRisesOnceAMillisecond(t *testing.T) {
	var m Meter
	m.Observe(time.Millisecond)
	for attempt := 0; attempt < 20; attempt++ {
		nextMillisecond(t)
		before, _ := m.Latency()
		ms := nowMillis()
		for i := 0; i < 8; i++ {
			m.Observe(50 * time.Millisecond)
		}
		if nowMillis() != ms {
			continue // the clock moved during the burst: try again
		}
		if d, _ := m.Latency(); d != 2*before {
			t.Fatalf("8 late answers in one millisecond took the average from %v to %v, want %v (one doubling)", before, d, 2*before)
		}
		return
	}
	t.Skip("the clock moved during every burst of 8 observations; the machine is too busy")
}

// A target's slow spell lifts its average several-fold; once it answers
// fast again, the average is back near its true latency within a few
// FallTimes, not DecayTime's quarter second, so a spell costs it little
// of its share.
func TestFallsBackAfterAPause(t *testing.T) {
	var m Meter
	m.Observe(time.Millisecond)
	for i := 0; i < 5; i++ {
		nextMillisecond(t)
		m.Observe(6 * time.Millisecond) // a slow spell: late answers
	}
	if d, _ := m.Latency(); d != 6*time.Millisecond {
		t.Fatalf("after the slow spell: %v, want 6ms", d)
	}
	// Fast answers again, about one a millisecond, for 150 ms (3
	// FallTimes). The loop is bounded by count and by time.
	start := time.Now()
	for i := 0; i < 10000 && time.Since(start) < 150*time.Millisecond; i++ {
		m.Observe(time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	// 3 time constants leave 5 % of the 5 ms gap: 1.25 ms. DecayTime's
	// pace would leave 3.7 ms.
	if d, _ := m.Latency(); d > 1500*time.Microsecond {
		t.Fatalf("%v of fast answers after a pause left the average at %v, want under 1.5ms", time.Since(start).Round(time.Millisecond), d)
	}
}

func TestDecayWeights(t *testing.T) {
	tests := []struct {
		elapsed uint32
		want    float64
	}{
		{0, 1},
		{uint32(DecayTime / time.Millisecond), math.Exp(-1)},
		{3 * uint32(DecayTime/time.Millisecond), math.Exp(-3)},
	}
	for _, tc := range tests {
		if got := decay(tc.elapsed); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("decay(%d ms) = %v, want %v", tc.elapsed, got, tc.want)
		}
	}
	// The clock's wrap: a reading just after it minus one just before is
	// still a small elapsed time.
	before, after := uint32(math.MaxUint32-5), uint32(4)
	if e := after - before; e != 10 {
		t.Fatalf("elapsed across the wrap = %d, want 10", e)
	}
}

func TestCost(t *testing.T) {
	var fresh Meter
	if c := fresh.Cost(); c != 0 {
		t.Errorf("idle, never measured: cost %v, want 0 (so it is tried)", c)
	}
	fresh.Start()
	if c := fresh.Cost(); c != penalty {
		t.Errorf("one request out, never measured: cost %v, want the penalty (no second request before the first answer)", c)
	}
	var m Meter
	m.Observe(4 * time.Millisecond)
	base := m.Cost()
	m.Start()
	m.Start()
	if c := m.Cost(); math.Abs(c-3*base) > base*0.01 {
		t.Errorf("cost with 2 in flight = %v, want 3 × %v", c, base)
	}
	m.Done()
	m.Done()
	if m.InFlight() != 0 {
		t.Errorf("InFlight() = %d after two Start and two Done", m.InFlight())
	}
	// Idle, the average decays with time; holding requests, it does not.
	var old Meter
	old.latency.Store(pack(1000, nowMillis()-uint32(DecayTime/time.Millisecond)))
	if c := old.Cost(); math.Abs(c-1000*math.Exp(-1)) > 1 {
		t.Errorf("idle for one decay time: cost %v, want %v", c, 1000*math.Exp(-1))
	}
	old.Start()
	// Holding a request unanswered for a decay time (250 ms): the
	// average does not decay, and the wait itself is a latency of at
	// least 249 ms, which is what the request it holds is priced at.
	want := float64(uint32(DecayTime/time.Millisecond)-1) * 1000 * 2
	if c := old.Cost(); c < want || c > want+2000*2 {
		t.Errorf("holding a request, not answered for a decay time: cost %v, want about %v (the pending wait, no decay)", c, want)
	}
	// A fresh average with a request out is the average times two.
	var busy Meter
	busy.Observe(time.Millisecond)
	busy.Start()
	if c := busy.Cost(); c != 2000 {
		t.Errorf("one request out, answered just now: cost %v, want 2000", c)
	}
}

func TestWeight(t *testing.T) {
	tests := []struct{ set, want uint32 }{{1000, 1000}, {500, 500}, {0, 1}, {5000, 1000}, {10, 10}}
	for _, tc := range tests {
		var m Meter
		if m.Weight() != 1000 {
			t.Fatalf("zero Meter weight %d, want 1000", m.Weight())
		}
		m.SetWeight(tc.set)
		if got := m.Weight(); got != tc.want {
			t.Errorf("SetWeight(%d): Weight() = %d, want %d", tc.set, got, tc.want)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	var m Meter
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(time.Millisecond)
		}
	})
}

func BenchmarkCost(b *testing.B) {
	var m Meter
	m.Observe(time.Millisecond)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Cost()
	}
}
