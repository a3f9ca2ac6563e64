package anomaly

import (
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/balance/load"
)

// period feeds one period of traffic to a meter: n requests of latency
// lat, of which failed failed.
type period struct {
	n, failed int
	lat       time.Duration
}

func feed(m *load.Meter, p period) {
	for k := 0; k < p.n; k++ {
		m.Observe(p.lat)
		if k < p.failed {
			m.Failed()
		} else {
			m.Answered()
		}
	}
}

func TestTick(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		traffic []period
		// dimmed lists the targets whose weight must fall below full
		// after one judged period.
		dimmed []bool
	}{
		{"all alike", []period{{100, 0, ms}, {100, 0, ms}, {100, 0, ms}}, []bool{false, false, false}},
		{"one slow", []period{{100, 0, ms}, {100, 0, ms}, {100, 0, 20 * ms}}, []bool{false, false, true}},
		{"one failing", []period{{100, 0, ms}, {100, 1, ms}, {100, 40, ms}}, []bool{false, false, true}},
		// Slower in ratio but by less than the absolute margin: noise.
		{"fast and a bit slower", []period{{100, 0, 100 * time.Microsecond}, {100, 0, 100 * time.Microsecond}, {100, 0, 2 * ms}}, []bool{false, false, false}},
		// Two targets cannot tell an anomaly from the norm.
		{"two targets", []period{{100, 0, ms}, {100, 0, 20 * ms}}, []bool{false, false}},
		// Too few requests to judge.
		{"too few requests", []period{{100, 0, ms}, {100, 0, ms}, {3, 3, 20 * ms}}, []bool{false, false, false}},
		// When most targets look bad, the norm is bad: nobody is dimmed
		// (the median makes "at most half" hold; Tick enforces it too).
		{"most look bad", []period{{100, 0, ms}, {100, 0, 30 * ms}, {100, 0, 50 * ms}, {100, 0, 40 * ms}, {100, 0, ms}}, []bool{false, false, false, false, false}},
		// Two bad of five: both dimmed, the rest not.
		{"two of five bad", []period{{100, 0, ms}, {100, 0, 30 * ms}, {100, 0, ms}, {100, 0, 40 * ms}, {100, 0, ms}}, []bool{false, true, false, true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			meters := make([]*load.Meter, len(tc.traffic))
			for i := range meters {
				meters[i] = new(load.Meter)
			}
			var d Detector
			d.Tick(meters) // the baseline of the counters
			for i, p := range tc.traffic {
				feed(meters[i], p)
			}
			d.Tick(meters)
			for i, m := range meters {
				if got := m.Weight() < 1000; got != tc.dimmed[i] {
					t.Errorf("target %d: dimmed=%v (weight %d, anomalous %v), want dimmed=%v", i, got, m.Weight(), m.Anomalous(), tc.dimmed[i])
				}
				if m.Anomalous() != tc.dimmed[i] {
					t.Errorf("target %d: Anomalous()=%v, want %v", i, m.Anomalous(), tc.dimmed[i])
				}
			}
		})
	}
}

// An anomalous target is halved each period down to the floor, which
// still gets it traffic, and once it behaves it climbs back step by step
// to a full share.
func TestDimAndRecover(t *testing.T) {
	meters := []*load.Meter{new(load.Meter), new(load.Meter), new(load.Meter)}
	var d Detector
	d.Tick(meters)
	bad := []period{{50, 0, time.Millisecond}, {50, 0, time.Millisecond}, {50, 0, 30 * time.Millisecond}}
	var weights []uint32
	for k := 0; k < 10; k++ {
		for i, p := range bad {
			feed(meters[i], p)
		}
		d.Tick(meters)
		weights = append(weights, meters[2].Weight())
	}
	want := []uint32{500, 250, 125, 62, 31, 15, floorWeight, floorWeight, floorWeight, floorWeight}
	for k := range want {
		if weights[k] != want[k] {
			t.Fatalf("weights while anomalous %v, want %v", weights, want)
		}
	}
	good := []period{{50, 0, time.Millisecond}, {50, 0, time.Millisecond}, {5, 0, time.Millisecond}}
	steps := 0
	for meters[2].Weight() < 1000 {
		if steps++; steps > 20 {
			t.Fatalf("weight %d after 20 good periods; want full", meters[2].Weight())
		}
		before := meters[2].Weight()
		for i, p := range good {
			feed(meters[i], p)
		}
		d.Tick(meters)
		if meters[2].Weight() <= before || meters[2].Weight() > before+rampStep {
			t.Fatalf("weight went %d → %d in a good period; want a step of at most %d up", before, meters[2].Weight(), rampStep)
		}
	}
	if meters[2].Anomalous() {
		t.Error("still anomalous after recovering")
	}
	if steps != (1000-floorWeight+rampStep-1)/rampStep {
		t.Errorf("recovered in %d periods, want %d", steps, (1000-floorWeight+rampStep-1)/rampStep)
	}
}
