package metrics

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencyBuckets is the number of buckets of a Latency histogram.
const LatencyBuckets = 2*64 + 2

// Latency is a lock-free log-scale histogram with two buckets per power of
// two (upper bounds 1, 1.5, 2, 3, 4, 6, 8 ... ns, within 25 %), fine enough
// for the dashboard's p99 where Prometheus buckets are too coarse. Adding
// is one atomic increment.
type Latency struct {
	b [LatencyBuckets]atomic.Uint64
}

// LatencyCounts is a snapshot of a Latency (cumulative counts per bucket,
// not summed across buckets).
type LatencyCounts [LatencyBuckets]uint64

func latencyBucket(d time.Duration) int {
	ns := uint64(max(d, 0))
	if ns <= 1 {
		return int(ns)
	}
	l := bits.Len64(ns - 1) // ns-1 < 2^l, so ns <= 2^l
	// Half of the bucket [2^(l-1), 2^l]: is ns <= 1.5 * 2^(l-1)?
	if l >= 2 && ns <= 3<<(l-2) {
		return 2 * l
	}
	return 2*l + 1
}

// LatencyUpperBound is the largest duration bucket i holds.
func LatencyUpperBound(i int) time.Duration {
	if i <= 2 {
		return time.Duration(min(i, 1)) // bucket 2 stays empty
	}
	l := i / 2
	if l >= 63 {
		return time.Duration(1<<63 - 1)
	}
	if i%2 == 0 && l >= 2 {
		return time.Duration(3 << (l - 2))
	}
	return time.Duration(1 << l)
}

// Observe adds one duration.
func (h *Latency) Observe(d time.Duration) { h.b[latencyBucket(d)].Add(1) }

// Snapshot reads every bucket (not atomically as a whole; fine for rates).
func (h *Latency) Snapshot() (c LatencyCounts) {
	for i := range h.b {
		c[i] = h.b[i].Load()
	}
	return c
}

// Sub returns c - prev bucket by bucket (the observations in between).
func (c LatencyCounts) Sub(prev LatencyCounts) (d LatencyCounts) {
	for i := range c {
		d[i] = c[i] - prev[i]
	}
	return d
}

// Add accumulates o into c.
func (c *LatencyCounts) Add(o LatencyCounts) {
	for i := range c {
		c[i] += o[i]
	}
}

// Quantile is the upper bound of the bucket holding the q-quantile
// (0 when empty).
func (c LatencyCounts) Quantile(q float64) time.Duration {
	var total uint64
	for _, n := range c {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	var seen uint64
	for i, n := range c {
		seen += n
		if seen >= rank {
			return LatencyUpperBound(i)
		}
	}
	return LatencyUpperBound(len(c) - 1)
}
