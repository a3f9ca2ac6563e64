package promql

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Labels are a series' labels; __name__ holds the metric name.
type Labels map[string]string

// String is the labels in Prometheus's {a="b", ...} form, sorted.
func (l Labels) String() string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, l[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (l Labels) copyWithout(drop ...string) Labels {
	out := Labels{}
	for k, v := range l {
		if !slices.Contains(drop, k) {
			out[k] = v
		}
	}
	return out
}

// Sample is one value of a series at a time.
type Sample struct {
	T time.Time
	V float64
}

type series struct {
	labels  Labels
	samples []Sample // in time order
}

// Store holds scraped samples, as Prometheus's TSDB would.
type Store struct {
	series map[string]*series
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{series: map[string]*series{}} }

// Add appends a sample; samples of one series must come in time order.
func (s *Store) Add(l Labels, t time.Time, v float64) {
	key := l.String()
	se := s.series[key]
	if se == nil {
		se = &series{labels: l.copyWithout()}
		s.series[key] = se
	}
	se.samples = append(se.samples, Sample{t, v})
}

// Lookback is how far back an instant selector finds a series' last
// sample (Prometheus's default).
const Lookback = 5 * time.Minute

// Element is one series of an instant vector.
type Element struct {
	Labels Labels
	V      float64
}

// Value is a Scalar or a Vector.
type Value interface{ value() }

// Scalar is a number.
type Scalar float64

// Vector is an instant vector.
type Vector []Element

func (Scalar) value() {}
func (Vector) value() {}

// Eval evaluates n at time t over the store.
func (s *Store) Eval(n Node, t time.Time) (Value, error) {
	switch n := n.(type) {
	case NumberNode:
		return Scalar(n.V), nil
	case SelectorNode:
		if n.Range > 0 {
			return nil, fmt.Errorf("range selector outside rate or increase")
		}
		var out Vector
		for _, se := range s.matching(n.Matchers) {
			if v, ok := se.at(t); ok {
				out = append(out, Element{se.labels, v})
			}
		}
		return out, nil
	case CallNode:
		return s.call(n, t)
	case AggNode:
		v, err := s.vector(n.Expr, t)
		if err != nil {
			return nil, err
		}
		return aggregate(n, v), nil
	case BinaryNode:
		return s.binary(n, t)
	}
	return nil, fmt.Errorf("unknown node %T", n)
}

func (s *Store) vector(n Node, t time.Time) (Vector, error) {
	v, err := s.Eval(n, t)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(Vector)
	if !ok {
		return nil, fmt.Errorf("want an instant vector, got a scalar")
	}
	return vec, nil
}

func (s *Store) matching(ms []Matcher) []*series {
	var out []*series
	keys := make([]string, 0, len(s.series))
	for k := range s.series {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable order for legends
	for _, k := range keys {
		se := s.series[k]
		ok := true
		for _, m := range ms {
			if !m.Matches(se.labels[m.Label]) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, se)
		}
	}
	return out
}

// at is the series' last value at or before t, within Lookback.
func (se *series) at(t time.Time) (float64, bool) {
	i := sort.Search(len(se.samples), func(i int) bool { return se.samples[i].T.After(t) })
	if i == 0 || t.Sub(se.samples[i-1].T) > Lookback {
		return 0, false
	}
	return se.samples[i-1].V, true
}

// window is the series' samples in (t-r, t].
func (se *series) window(t time.Time, r time.Duration) []Sample {
	lo := sort.Search(len(se.samples), func(i int) bool { return se.samples[i].T.After(t.Add(-r)) })
	hi := sort.Search(len(se.samples), func(i int) bool { return se.samples[i].T.After(t) })
	return se.samples[lo:hi]
}

func (s *Store) call(c CallNode, t time.Time) (Value, error) {
	switch c.Func {
	case "time":
		return Scalar(float64(t.UnixNano()) / 1e9), nil
	case "rate", "increase":
		sel := c.Args[0].(SelectorNode)
		var out Vector
		for _, se := range s.matching(sel.Matchers) {
			w := se.window(t, sel.Range)
			if len(w) < 2 {
				continue
			}
			// Counter resets: a drop means the counter restarted from 0.
			var delta float64
			for i := 1; i < len(w); i++ {
				if d := w[i].V - w[i-1].V; d >= 0 {
					delta += d
				} else {
					delta += w[i].V
				}
			}
			span := w[len(w)-1].T.Sub(w[0].T).Seconds()
			rate := delta / span
			v := rate
			if c.Func == "increase" {
				// Extrapolated to the whole range, as Prometheus does
				// (without its boundary corrections).
				v = rate * sel.Range.Seconds()
			}
			out = append(out, Element{se.labels.copyWithout("__name__"), v})
		}
		return out, nil
	case "histogram_quantile":
		q, err := s.Eval(c.Args[0], t)
		if err != nil {
			return nil, err
		}
		qs, ok := q.(Scalar)
		if !ok {
			return nil, fmt.Errorf("histogram_quantile: the quantile must be a scalar")
		}
		v, err := s.vector(c.Args[1], t)
		if err != nil {
			return nil, err
		}
		return histogramQuantile(float64(qs), v), nil
	}
	return nil, fmt.Errorf("function %s is not supported", c.Func)
}

type bucket struct {
	le    float64
	count float64
}

// histogramQuantile is Prometheus's: buckets grouped by every label but
// le, cumulative counts, linear interpolation inside the bucket; a
// quantile in the +Inf bucket is the highest finite upper bound.
func histogramQuantile(q float64, v Vector) Vector {
	groups := map[string]*struct {
		labels  Labels
		buckets []bucket
	}{}
	var order []string
	for _, e := range v {
		le, ok := e.Labels["le"]
		if !ok {
			continue
		}
		var bound float64
		if _, err := fmt.Sscan(le, &bound); err != nil && le != "+Inf" {
			continue
		}
		if le == "+Inf" {
			bound = math.Inf(1)
		}
		l := e.Labels.copyWithout("le", "__name__")
		key := l.String()
		g := groups[key]
		if g == nil {
			g = &struct {
				labels  Labels
				buckets []bucket
			}{labels: l}
			groups[key] = g
			order = append(order, key)
		}
		g.buckets = append(g.buckets, bucket{bound, e.V})
	}
	var out Vector
	for _, key := range order {
		g := groups[key]
		sort.Slice(g.buckets, func(i, j int) bool { return g.buckets[i].le < g.buckets[j].le })
		b := g.buckets
		if len(b) < 2 || !math.IsInf(b[len(b)-1].le, 1) {
			continue
		}
		total := b[len(b)-1].count
		if total == 0 || math.IsNaN(total) {
			continue // no observations in the window: no value, as Prometheus's NaN
		}
		rank := q * total
		i := sort.Search(len(b)-1, func(i int) bool { return b[i].count >= rank })
		var val float64
		switch {
		case i == len(b)-1:
			val = b[len(b)-2].le
		default:
			start, countBelow := 0.0, 0.0
			if i > 0 {
				start, countBelow = b[i-1].le, b[i-1].count
			}
			inBucket := b[i].count - countBelow
			if inBucket <= 0 {
				val = b[i].le
			} else {
				val = start + (b[i].le-start)*(rank-countBelow)/inBucket
			}
		}
		out = append(out, Element{g.labels, val})
	}
	return out
}

func aggregate(a AggNode, v Vector) Vector {
	type group struct {
		labels Labels
		vals   []float64
	}
	groups := map[string]*group{}
	var order []string
	for _, e := range v {
		var l Labels
		if a.Without {
			l = e.Labels.copyWithout(append([]string{"__name__"}, a.Labels...)...)
		} else {
			l = Labels{}
			for _, k := range a.Labels {
				if val, ok := e.Labels[k]; ok {
					l[k] = val
				}
			}
		}
		key := l.String()
		g := groups[key]
		if g == nil {
			g = &group{labels: l}
			groups[key] = g
			order = append(order, key)
		}
		g.vals = append(g.vals, e.V)
	}
	out := make(Vector, 0, len(order))
	for _, key := range order {
		g := groups[key]
		var r float64
		switch a.Op {
		case "sum", "avg":
			for _, x := range g.vals {
				r += x
			}
			if a.Op == "avg" {
				r /= float64(len(g.vals))
			}
		case "min":
			r = slices.Min(g.vals)
		case "max":
			r = slices.Max(g.vals)
		case "count":
			r = float64(len(g.vals))
		}
		out = append(out, Element{g.labels, r})
	}
	return out
}

func comparison(op string) bool {
	switch op {
	case "==", "!=", "<", "<=", ">", ">=":
		return true
	}
	return false
}

// apply computes a op b; for a comparison, ok says whether it holds.
func apply(op string, a, b float64) (v float64, ok bool) {
	switch op {
	case "+":
		return a + b, true
	case "-":
		return a - b, true
	case "*":
		return a * b, true
	case "/":
		return a / b, true
	case "%":
		return math.Mod(a, b), true
	case "^":
		return math.Pow(a, b), true
	case "==":
		return a, a == b
	case "!=":
		return a, a != b
	case "<":
		return a, a < b
	case "<=":
		return a, a <= b
	case ">":
		return a, a > b
	case ">=":
		return a, a >= b
	}
	return math.NaN(), false
}

func (s *Store) binary(b BinaryNode, t time.Time) (Value, error) {
	l, err := s.Eval(b.LHS, t)
	if err != nil {
		return nil, err
	}
	r, err := s.Eval(b.RHS, t)
	if err != nil {
		return nil, err
	}
	ls, lScalar := l.(Scalar)
	rs, rScalar := r.(Scalar)
	cmp := comparison(b.Op)
	switch {
	case lScalar && rScalar:
		v, _ := apply(b.Op, float64(ls), float64(rs))
		return Scalar(v), nil
	case lScalar || rScalar:
		var out Vector
		vec, _ := l.(Vector)
		if lScalar {
			vec, _ = r.(Vector)
		}
		for _, e := range vec {
			x, y := e.V, float64(rs)
			if lScalar {
				x, y = float64(ls), e.V
			}
			v, ok := apply(b.Op, x, y)
			if !ok {
				continue
			}
			labels := e.Labels
			if !cmp {
				labels = labels.copyWithout("__name__")
			} else {
				v = e.V // a filter keeps the vector's value
			}
			out = append(out, Element{labels, v})
		}
		return out, nil
	}
	return vectorBinary(b, l.(Vector), r.(Vector), cmp), nil
}

// signature is what a vector element is matched on.
func signature(l Labels, m Matching) string {
	if m.On {
		sub := Labels{}
		for _, k := range m.Labels {
			sub[k] = l[k]
		}
		return sub.String()
	}
	return l.copyWithout(append([]string{"__name__"}, m.Labels...)...).String()
}

func vectorBinary(b BinaryNode, lv, rv Vector, cmp bool) Vector {
	m := b.Matching
	right := map[string]Element{}
	dup := map[string]bool{}
	for _, e := range rv {
		sig := signature(e.Labels, m)
		if _, ok := right[sig]; ok {
			dup[sig] = true // many on the "one" side: no match, as Prometheus errors
		}
		right[sig] = e
	}
	seen := map[string]bool{}
	var out Vector
	for _, e := range lv {
		sig := signature(e.Labels, m)
		re, ok := right[sig]
		if !ok || dup[sig] {
			continue
		}
		if !m.GroupLeft {
			if seen[sig] {
				continue // one-to-one with many on the left: Prometheus errors
			}
			seen[sig] = true
		}
		v, ok := apply(b.Op, e.V, re.V)
		if !ok {
			continue
		}
		labels := e.Labels
		if cmp {
			v = e.V
		} else {
			labels = labels.copyWithout("__name__")
		}
		if !m.GroupLeft && len(m.Labels) > 0 {
			if m.On {
				keep := Labels{}
				for _, k := range m.Labels {
					if val, ok := labels[k]; ok {
						keep[k] = val
					}
				}
				labels = keep
			} else {
				labels = labels.copyWithout(m.Labels...)
			}
		}
		if len(m.Include) > 0 {
			labels = labels.copyWithout()
			for _, k := range m.Include {
				if val, ok := re.Labels[k]; ok {
					labels[k] = val
				} else {
					delete(labels, k)
				}
			}
		}
		out = append(out, Element{labels, v})
	}
	return out
}
