// Package load measures how busy one target is, for the pickers that
// balance by load: the requests it holds, a peak-sensitive moving average
// of how long it takes to answer, how its requests end, and the weight
// anomaly mitigation gives it.
//
// Every figure is one atomic word, so a pick reads a target's load with
// plain loads and never takes a lock.
package load

import (
	"math"
	"sync/atomic"
	"time"
)

// DecayTime is the peak-EWMA's time constant: an observation's weight in
// the average falls to 1/e after this long, and so does the latency
// of a target that gets no traffic. Finagle and Linkerd use 10 s, for
// clients that see far fewer requests per target than a balancer does.
// A balancer sees thousands a second, and with a long constant one
// latency spike of a healthy target (a GC pause, a descheduled thread)
// kept its price up for seconds: on bench/'s equal replicas the split
// swung ±8 %, and the fast targets' inflated prices let a 20 ms replica
// keep over 1 % of the RPCs. At 250 ms a spike is forgotten within a
// second, and a slow target that recovered is tried within a second too.
const DecayTime = 250 * time.Millisecond

// FallTime is the time constant with which faster answers bring the
// average down: 1/e of the gap is left after this long. It is shorter
// than DecayTime because a healthy replica's pauses (a GC, a thread
// descheduled on a busy core) lift its average several-fold for a
// moment, all the requests it held answering late together; falling
// back at DecayTime's pace took ~300 ms after each, with its share
// lost meanwhile, and bench/'s equal replicas split ±4–7 % over 5 s.
// The peak (up) and the idle decay (how soon a priced-out target is
// tried again) do not depend on it.
const FallTime = 50 * time.Millisecond

// epoch is the origin of the meters' millisecond clock (monotonic).
var epoch = time.Now()

// nowMillis is the meters' clock. It wraps after 49 days, and the
// subtraction of two readings stays right across the wrap.
func nowMillis() uint32 { return uint32(time.Since(epoch) / time.Millisecond) }

// Meter is one target's load. The zero value is ready: no request in
// flight, no latency known, full weight.
type Meter struct {
	inFlight atomic.Int64
	// latency packs the average (float32 microseconds, high half) with
	// the millisecond it was last updated (low half), so that a reader
	// sees the two together in one load.
	latency atomic.Uint64
	// answered and failed count requests by how they ended, and
	// observed and latencySum (microseconds) the latencies seen, for
	// anomaly mitigation, which reads their differences over time.
	answered, failed     atomic.Uint64
	observed, latencySum atomic.Uint64
	anomalous            atomic.Bool
	// dimmed is 1000 minus the weight in thousandths: the zero value is
	// full weight.
	dimmed atomic.Uint32
}

// InFlight is the number of requests the target holds.
func (m *Meter) InFlight() int64 { return m.inFlight.Load() }

// Start counts a request sent to the target.
func (m *Meter) Start() { m.inFlight.Add(1) }

// Done counts a request the target no longer holds.
func (m *Meter) Done() { m.inFlight.Add(-1) }

// InFlightCounter exposes the in-flight count itself, for code that
// counts requests without knowing about meters.
func (m *Meter) InFlightCounter() *atomic.Int64 { return &m.inFlight }

func pack(us float32, ms uint32) uint64 { return uint64(math.Float32bits(us))<<32 | uint64(ms) }

func unpack(v uint64) (us float32, ms uint32) {
	return math.Float32frombits(uint32(v >> 32)), uint32(v)
}

// decay is the weight that an average last updated elapsed milliseconds
// ago keeps.
func decay(elapsed uint32) float64 { return decayBy(elapsed, DecayTime) }

// decayBy is decay with time constant tau.
func decayBy(elapsed uint32, tau time.Duration) float64 {
	if elapsed == 0 {
		return 1
	}
	return math.Exp(-float64(elapsed) / float64(tau/time.Millisecond))
}

// Observe records how long the target took to answer one request. A
// latency above the average replaces it at once, up to twice the average
// (the "peak" that makes a target that slows down lose traffic within a
// few answers); one below moves the
// average toward it with a weight that grows with the time since the last
// update (FallTime), so the average follows time, not the request rate.
func (m *Meter) Observe(d time.Duration) {
	us := float32(d) / float32(time.Microsecond)
	if us <= 0 {
		us = 1 // a zero average means "never measured"
	}
	m.observed.Add(1)
	m.latencySum.Add(uint64(us))
	now := nowMillis()
	for {
		old := m.latency.Load()
		avg, at := unpack(old)
		next := us
		switch {
		case avg == 0:
		case us < avg:
			w := decayBy(now-at, FallTime)
			next = float32(float64(avg)*w + float64(us)*(1-w))
		case at == now:
			// The peak rises once a millisecond at most. After a pause
			// of a healthy target, every request it held answers late
			// in the same instant; counting each as a new peak took its
			// average up by 2× per answer, to the pause's length, and
			// cost it its share until the average fell back.
			next = avg
		case us > 2*avg:
			// The peak at most doubles the average per answer: a target
			// that really slowed down reaches its new latency within a
			// few answers (20× in five), while one stray slow answer of
			// a healthy target (a pause, a descheduled thread) no longer
			// multiplies its price, which with many requests in flight
			// let a slow replica look as cheap as a busy fast one.
			next = 2 * avg
		}
		if m.latency.CompareAndSwap(old, pack(next, now)) {
			return
		}
	}
}

// Latency is the average as last updated, without the decay of the time
// since: what the target's answers looked like when it last gave one.
// ok is false before the first observation.
func (m *Meter) Latency() (d time.Duration, ok bool) {
	avg, _ := unpack(m.latency.Load())
	return time.Duration(float64(avg) * float64(time.Microsecond)), avg != 0
}

// penalty is the cost of a target that holds requests but has never
// answered one: it gets no second request before its first answer, as in
// Finagle's peak EWMA, so a new target is measured before it is loaded.
const penalty = math.MaxFloat64 / 4

// Cost is the peak-EWMA balancer's price of sending the target one more
// request: its latency average times the requests it would then hold.
// While the target holds no request, the average is decayed by the time
// since it was last updated: that is what gives a target that got too
// slow to be picked a new chance after a while. While it holds some, it
// is not: a target that stopped answering must not look cheaper the
// longer it keeps its requests.
func (m *Meter) Cost() float64 { return m.CostAt(Now()) }

// Now is the meters' clock, for CostAt: a picker that compares several
// targets reads it once.
func Now() uint32 { return nowMillis() }

// CostAt is Cost at a time read from Now.
func (m *Meter) CostAt(now uint32) float64 {
	lat, held := m.PriceAt(now)
	return lat * float64(held+1)
}

// PriceAt splits CostAt into its two factors, read together: the price
// of one request (the latency average, decayed while the target holds
// nothing, at least the time it has kept its requests unanswered, or
// the penalty of a target that holds requests and never answered) and
// the requests the target holds.
func (m *Meter) PriceAt(now uint32) (lat float64, held int64) {
	avg, at := unpack(m.latency.Load())
	held = m.inFlight.Load()
	if avg == 0 {
		if held > 0 {
			return penalty / float64(held+1), held
		}
		return 0, held
	}
	if held > 0 {
		// Requests are out and the target has not answered for a while:
		// its latency is at least that long (less the clock's step). A
		// slow target tried again gets one request until it answers, and
		// a target that stopped answering grows more expensive with
		// every millisecond, not only with every request it is sent.
		if pending := float64(now-at) - 1; pending > 0 && pending*1000 > float64(avg) {
			return pending * 1000, held
		}
		return float64(avg), held
	}
	return float64(avg) * decay(now-at), held
}

// Answered counts a request the target answered.
func (m *Meter) Answered() { m.answered.Add(1) }

// Failed counts a request that failed because of the target.
func (m *Meter) Failed() { m.failed.Add(1) }

// Outcomes are the counts of answered and failed requests so far.
func (m *Meter) Outcomes() (answered, failed uint64) { return m.answered.Load(), m.failed.Load() }

// Observed is the number of latencies observed and their sum.
func (m *Meter) Observed() (n uint64, sum time.Duration) {
	return m.observed.Load(), time.Duration(m.latencySum.Load()) * time.Microsecond
}

// Anomalous reports whether anomaly mitigation last judged the target
// worse than its peers.
func (m *Meter) Anomalous() bool { return m.anomalous.Load() }

// SetAnomalous records anomaly mitigation's judgement.
func (m *Meter) SetAnomalous(v bool) { m.anomalous.Store(v) }

// Weight is the target's share relative to a healthy peer, in
// thousandths (1000 is a full share).
func (m *Meter) Weight() uint32 { return 1000 - m.dimmed.Load() }

// SetWeight sets the weight in thousandths, clamped to 1..1000.
func (m *Meter) SetWeight(w uint32) { m.dimmed.Store(1000 - min(max(w, 1), 1000)) }
