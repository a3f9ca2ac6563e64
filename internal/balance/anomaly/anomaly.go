// Package anomaly is l7lb's take on the ALB's anomaly mitigation
// (load_balancing.algorithm.anomaly_mitigation=on with weighted_random):
// targets that answer worse than their peers, by failure ratio or by mean
// latency, get less traffic, down to a floor that still measures them,
// and win it back step by step once they look like their peers again.
//
// As on the ALB, a group needs at least three measured targets to tell an
// anomaly from the norm, and no more than half of them are dimmed at once:
// when most targets look bad the problem is not theirs.
package anomaly

import (
	"slices"
	"time"

	"github.com/l7lb/l7lb/internal/balance/load"
)

// The rules. A target is anomalous in a period when its failure ratio is
// both high and well above the median, or its mean latency is both far
// above the median in ratio and in absolute terms. The absolute margins
// keep noise among fast, healthy targets from counting.
const (
	Period = 250 * time.Millisecond

	minTargets     = 3
	minSamples     = 5 // requests a target needs in a period to be judged
	failRatioFloor = 0.05
	failRatioSlack = 0.02
	latencyRatio   = 3.0
	latencySlack   = 5 * time.Millisecond

	// Weights, in thousandths of a full share.
	floorWeight = 10  // 1 %: enough traffic to see a recovery
	rampStep    = 100 // a full share back in about 2.5 s of good periods
)

// Detector remembers each target's counters between periods. It is not
// safe for concurrent use: one goroutine per group calls Tick.
type Detector struct {
	prev map[*load.Meter]counters
}

type counters struct{ answered, failed, observed, latencySum uint64 }

type judged struct {
	m          *load.Meter
	n          uint64 // requests ended this period
	failRatio  float64
	meanLat    time.Duration
	hasLatency bool
	badness    float64 // how far past the thresholds; for choosing whom to dim
}

// Tick judges one period of meters and sets their weights and anomaly
// flags. Meters that left since the last call are forgotten.
func (d *Detector) Tick(meters []*load.Meter) {
	if d.prev == nil {
		d.prev = map[*load.Meter]counters{}
	}
	all := make([]judged, 0, len(meters))
	next := make(map[*load.Meter]counters, len(meters))
	for _, m := range meters {
		var c counters
		c.answered, c.failed = m.Outcomes()
		var sum time.Duration
		c.observed, sum = m.Observed()
		c.latencySum = uint64(sum / time.Microsecond)
		next[m] = c
		p, seen := d.prev[m]
		if !seen {
			p = c
		}
		j := judged{m: m, n: c.answered - p.answered + c.failed - p.failed}
		if j.n > 0 {
			j.failRatio = float64(c.failed-p.failed) / float64(j.n)
		}
		if obs := c.observed - p.observed; obs >= minSamples {
			j.meanLat = time.Duration(c.latencySum-p.latencySum) * time.Microsecond / time.Duration(obs)
			j.hasLatency = true
		}
		all = append(all, j)
	}
	d.prev = next

	medFail, medLat, judgedLat := medians(all)
	var anomalous []int
	if len(all) >= minTargets {
		for i := range all {
			j := &all[i]
			if j.n >= minSamples && j.failRatio >= failRatioFloor && j.failRatio > 2*medFail+failRatioSlack {
				j.badness += j.failRatio - medFail
			}
			if judgedLat >= minTargets && j.hasLatency && float64(j.meanLat) > latencyRatio*float64(medLat) && j.meanLat-medLat > latencySlack {
				j.badness += float64(j.meanLat) / float64(max(medLat, time.Microsecond))
			}
			if j.badness > 0 {
				anomalous = append(anomalous, i)
			}
		}
	}
	// The worst first; at most half of the group is dimmed.
	slices.SortFunc(anomalous, func(a, b int) int {
		switch {
		case all[a].badness > all[b].badness:
			return -1
		case all[a].badness < all[b].badness:
			return 1
		}
		return 0
	})
	dim := map[*load.Meter]bool{}
	for k, i := range anomalous {
		if k >= len(all)/2 {
			break
		}
		dim[all[i].m] = true
	}
	for _, j := range all {
		w := j.m.Weight()
		switch {
		case dim[j.m]:
			w = max(w/2, floorWeight)
		default:
			// A period that does not find it anomalous earns a step back,
			// also a period with too little traffic to judge: a target at
			// the floor is never left there unmeasured.
			w = min(w+rampStep, 1000)
		}
		j.m.SetWeight(w)
		j.m.SetAnomalous(dim[j.m])
	}
}

// medians of the failure ratios of targets with enough requests, and of
// the mean latencies of targets with enough observations (and how many
// had them).
func medians(all []judged) (fail float64, lat time.Duration, nLat int) {
	var fails []float64
	var lats []time.Duration
	for _, j := range all {
		if j.n >= minSamples {
			fails = append(fails, j.failRatio)
		}
		if j.hasLatency {
			lats = append(lats, j.meanLat)
		}
	}
	if len(fails) > 0 {
		slices.Sort(fails)
		fail = fails[len(fails)/2]
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		lat = lats[len(lats)/2]
	}
	return fail, lat, len(lats)
}
