// Package peakewma is l7lb's latency-aware balancer
// (l7lb.io/load-balancing-algorithm: peak_ewma): the power of two choices
// over each target's peak-EWMA latency times the requests it would hold,
// as Finagle and Linkerd balance, with two changes at the ends of the
// range: latencies within Alike of each other do not decide (the target
// holding fewer requests wins), and a target more than Dominated times
// slower than the other loses whatever both hold.
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

// Dominated is how many times slower than the other of the pair a target
// must answer to lose the pick whatever both hold. Below it, the cheaper
// by latency × (held + 1) wins. Without it, a slow replica stayed cheap
// enough to hold a request or two whenever its fast peers held many: a
// 20 ms replica next to 3 ms ones holding 16 each costs 20 × 2 against
// 3 × 17, and kept about 1 % of the RPCs, every one of them 20 ms late.
// It is tried again when its price has decayed to within Dominated of
// the others', one request at a time.
const Dominated = 4.0

// Alike is how close two targets' latencies must be to count as the
// same: then the one holding fewer requests wins, ties at random (as
// least_outstanding_requests picks, which still sends a target that
// answers half as fast half the traffic, since it holds each request
// twice as long). Equal replicas' latencies differ by their noise, and
// the product followed it: on bench/'s equal replicas the split moved
// ±4–8 % over 5 s, where least_outstanding_requests' stayed within 2 %.
const Alike = 2.0

// Pick returns the cheaper of two targets drawn at random, or ok=false
// when there are none. Equal costs (say, two targets never measured and
// idle) go either way at random.
func (p *Picker[T]) Pick() (item T, ok bool) {
	i, j, two := leastrequest.Draw(len(p.items))
	if i < 0 {
		return item, false
	}
	if two && cheaper(p.meters[j], p.meters[i], load.Now()) {
		i = j
	}
	return p.items[i], true
}

// cheaper reports whether a should get the next request rather than b.
// Draw already put the two in random order, so a tie keeps b.
func cheaper(a, b *load.Meter, now uint32) bool {
	la, ha := a.PriceAt(now)
	lb, hb := b.PriceAt(now)
	switch {
	case lb > la*Dominated:
		return true
	case la > lb*Dominated:
		return false
	case la <= lb*Alike && lb <= la*Alike:
		return ha < hb
	}
	return la*float64(ha+1) < lb*float64(hb+1)
}

// Len is the number of targets.
func (p *Picker[T]) Len() int { return len(p.items) }
