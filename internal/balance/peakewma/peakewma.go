// Package peakewma is l7lb's latency-aware balancer
// (l7lb.io/load-balancing-algorithm: peak_ewma): the power of two choices
// over each target's peak-EWMA latency times the requests it would hold,
// as Finagle and Linkerd balance.
//
// A target that slows down is priced out at its first slow answer (the
// average jumps to a latency above it); one that holds many requests is
// priced out by their number; and one that got no traffic for a while
// becomes cheap again as its average decays, so it is tried, and earns
// its share back as soon as its answers are fast again (see load.Meter).
package peakewma

import (
	"github.com/l7lb/l7lb/internal/balance/leastrequest"
	"github.com/l7lb/l7lb/internal/balance/load"
)

// Picker is immutable: a new set of targets means a new Picker.
type Picker[T any] struct {
	items  []T
	meters []*load.Meter
}

// New returns a Picker over items, whose loads are meters (same order).
// It does not copy them.
func New[T any](items []T, meters []*load.Meter) *Picker[T] {
	if len(items) != len(meters) {
		panic("peakewma: items and meters differ in length")
	}
	return &Picker[T]{items: items, meters: meters}
}

// Pick returns the cheaper of two targets drawn at random, or ok=false
// when there are none. Equal costs (say, two targets never measured and
// idle) go either way at random.
func (p *Picker[T]) Pick() (item T, ok bool) {
	i, j, two := leastrequest.Draw(len(p.items))
	if i < 0 {
		return item, false
	}
	if two {
		if now := load.Now(); p.meters[j].CostAt(now) < p.meters[i].CostAt(now) {
			i = j
		}
	}
	return p.items[i], true
}

// Len is the number of targets.
func (p *Picker[T]) Len() int { return len(p.items) }
