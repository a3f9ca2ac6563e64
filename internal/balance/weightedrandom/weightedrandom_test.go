package weightedrandom

import (
	"testing"

	"github.com/l7lb/l7lb/internal/balance/load"
)

func TestPickFollowsWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
	}{
		{"equal", []uint32{1000, 1000, 1000}},
		{"one dimmed", []uint32{1000, 1000, 100}},
		{"one at the floor", []uint32{1000, 1000, 10}},
		{"half and half", []uint32{500, 1000, 1000, 500}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items := make([]int, len(tc.weights))
			meters := make([]*load.Meter, len(tc.weights))
			var sum uint32
			for i, w := range tc.weights {
				items[i], meters[i] = i, new(load.Meter)
				meters[i].SetWeight(w)
				sum += w
			}
			p := New(items, meters)
			const picks = 200000
			counts := make([]int, len(items))
			for k := 0; k < picks; k++ {
				i, ok := p.Pick()
				if !ok {
					t.Fatal("no pick")
				}
				counts[i]++
			}
			for i, w := range tc.weights {
				want := float64(w) / float64(sum)
				got := float64(counts[i]) / picks
				if d := got - want; d > 0.01 || d < -0.01 {
					t.Errorf("target %d weight %d: share %.4f, want %.4f ± 0.01 (%v)", i, w, got, want, counts)
				}
			}
		})
	}
	if _, ok := New[int](nil, nil).Pick(); ok {
		t.Fatal("empty picker picked")
	}
}

func BenchmarkPick(b *testing.B) {
	items := []int{0, 1, 2}
	meters := []*load.Meter{new(load.Meter), new(load.Meter), new(load.Meter)}
	meters[2].SetWeight(10)
	p := New(items, meters)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Pick()
		}
	})
}
