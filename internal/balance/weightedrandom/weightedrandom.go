// Package weightedrandom picks targets at random in proportion to their
// weights: the ALB's weighted_random
// (load_balancing.algorithm.type=weighted_random). Without anomaly
// mitigation every weight is full and the pick is uniform; with it, the
// anomaly package lowers the weights of targets that answer worse than
// their peers.
//
// A pick draws a target uniformly and keeps it with probability
// weight/1000, else draws again (rejection sampling). Anomaly mitigation
// dims at most half of a group, so the expected number of draws stays
// under two; after maxDraws the last draw stands, which keeps a pick's
// cost bounded even if every weight were tiny.
package weightedrandom

import (
	"math/rand/v2"

	"github.com/l7lb/l7lb/internal/balance/load"
)

const maxDraws = 8

// Picker is immutable: a new set of targets means a new Picker. Weights
// live in the meters and may change at any time.
type Picker[T any] struct {
	items  []T
	meters []*load.Meter
}

// New returns a Picker over items, weighted by meters (same order). It
// does not copy them.
func New[T any](items []T, meters []*load.Meter) *Picker[T] {
	if len(items) != len(meters) {
		panic("weightedrandom: items and meters differ in length")
	}
	return &Picker[T]{items: items, meters: meters}
}

// Pick returns a target drawn in proportion to the weights, or ok=false
// when there are none.
func (p *Picker[T]) Pick() (item T, ok bool) {
	n := uint64(len(p.items))
	if n == 0 {
		return item, false
	}
	var i uint64
	for d := 0; d < maxDraws; d++ {
		r := rand.Uint64()
		i = r % n
		// The rest of the random number decides acceptance.
		if w := p.meters[i].Weight(); w >= 1000 || uint32((r/n)%1000) < w {
			break
		}
	}
	return p.items[i], true
}

// Len is the number of targets.
func (p *Picker[T]) Len() int { return len(p.items) }
