// Package leastrequest sends each request to the target holding the
// fewest requests: the ALB's least_outstanding_requests
// (load_balancing.algorithm.type=least_outstanding_requests).
//
// A pick compares two targets drawn at random (the power of two choices,
// as Envoy's LEAST_REQUEST and HAProxy's random(2) do) instead of
// scanning them all: the cost stays two loads whatever the group's size,
// and the result is close to a full scan's. Two distinct targets are
// drawn, so a group of two is always scanned whole, and ties go either
// way at random because the draw's order is random.
package leastrequest

import (
	"math/rand/v2"

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
		panic("leastrequest: items and meters differ in length")
	}
	return &Picker[T]{items: items, meters: meters}
}

// Pick returns the less loaded of two targets drawn at random, or
// ok=false when there are none.
func (p *Picker[T]) Pick() (item T, ok bool) {
	i, j, two := Draw(len(p.items))
	if i < 0 {
		return item, false
	}
	if two && p.meters[j].InFlight() < p.meters[i].InFlight() {
		i = j
	}
	return p.items[i], true
}

// Len is the number of targets.
func (p *Picker[T]) Len() int { return len(p.items) }

// Draw returns two distinct random indexes below n (two=false when n is
// 1: only i is valid; i=-1 when n is 0). One random number serves both.
func Draw(n int) (i, j int, two bool) {
	switch n {
	case 0:
		return -1, -1, false
	case 1:
		return 0, 0, false
	}
	r := rand.Uint64()
	nn := uint64(n)
	i = int(r % nn)
	j = int((r / nn) % (nn - 1))
	if j >= i {
		j++
	}
	return i, j, true
}
