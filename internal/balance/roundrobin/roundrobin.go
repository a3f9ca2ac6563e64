// Package roundrobin picks items in turn. It is the ALB's default
// algorithm (load_balancing.algorithm.type=round_robin).
package roundrobin

import "sync/atomic"

// Picker hands out its items in turn, safely from many goroutines, without
// locks or allocations. A Picker is immutable apart from its cursor: a new
// set of items means a new Picker.
type Picker[T any] struct {
	items []T
	next  atomic.Uint64
}

// New returns a Picker over items, which it does not copy: do not change
// items afterwards.
func New[T any](items []T) *Picker[T] {
	return &Picker[T]{items: items}
}

// Pick returns the next item, or ok=false when there are none.
func (p *Picker[T]) Pick() (item T, ok bool) {
	n := uint64(len(p.items))
	if n == 0 {
		return item, false
	}
	i := p.next.Add(1) - 1
	return p.items[i%n], true
}

// Len is the number of items.
func (p *Picker[T]) Len() int { return len(p.items) }
