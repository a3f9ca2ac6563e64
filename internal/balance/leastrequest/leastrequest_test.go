package leastrequest

import (
	"testing"

	"github.com/l7lb/l7lb/internal/balance/load"
)

func newSet(inFlight ...int) ([]int, []*load.Meter) {
	items := make([]int, len(inFlight))
	meters := make([]*load.Meter, len(inFlight))
	for i, n := range inFlight {
		items[i] = i
		meters[i] = new(load.Meter)
		for k := 0; k < n; k++ {
			meters[i].Start()
		}
	}
	return items, meters
}

func TestDraw(t *testing.T) {
	if i, _, _ := Draw(0); i != -1 {
		t.Fatalf("Draw(0) = %d, want -1", i)
	}
	if i, _, two := Draw(1); i != 0 || two {
		t.Fatalf("Draw(1) = %d, two=%v; want 0, false", i, two)
	}
	// Pairs are distinct and every ordered pair is about equally likely.
	const n, draws = 4, 120000
	counts := map[[2]int]int{}
	for k := 0; k < draws; k++ {
		i, j, two := Draw(n)
		if !two || i == j || i < 0 || j < 0 || i >= n || j >= n {
			t.Fatalf("Draw(%d) = %d, %d, %v", n, i, j, two)
		}
		counts[[2]int{i, j}]++
	}
	want := draws / (n * (n - 1))
	if len(counts) != n*(n-1) {
		t.Fatalf("%d distinct ordered pairs, want %d", len(counts), n*(n-1))
	}
	for pair, c := range counts {
		if c < want*9/10 || c > want*11/10 {
			t.Errorf("pair %v drawn %d times, want %d ± 10%%", pair, c, want)
		}
	}
}

func TestPick(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int
		// want[i] is the expected share of target i in percent, ± 3.
		want []int
	}{
		// Of two, the less loaded always wins.
		{"two", []int{5, 1}, []int{0, 100}},
		// Of three, the least loaded is in 2 of 3 pairs and wins them; the
		// middle one wins the pair without the least loaded.
		{"three", []int{0, 3, 7}, []int{67, 33, 0}},
		// Ties split evenly.
		{"ties", []int{2, 2, 2}, []int{33, 33, 33}},
		{"one", []int{9}, []int{100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items, meters := newSet(tc.inFlight...)
			p := New(items, meters)
			const picks = 30000
			counts := make([]int, len(items))
			for k := 0; k < picks; k++ {
				i, ok := p.Pick()
				if !ok {
					t.Fatal("no pick")
				}
				counts[i]++
			}
			for i, w := range tc.want {
				got := 100 * counts[i] / picks
				if got < w-3 || got > w+3 {
					t.Errorf("target %d (in flight %d): %d%% of picks, want %d%% (%v)", i, tc.inFlight[i], got, w, counts)
				}
			}
		})
	}
	if _, ok := New[int](nil, nil).Pick(); ok {
		t.Fatal("empty picker picked")
	}
}

// In a closed loop where one target is slow to finish, in-flight counts
// equalise, so the slow target gets a share proportional to its speed.
func TestSlowTargetHoldsItsRequests(t *testing.T) {
	items, meters := newSet(0, 0, 0)
	p := New(items, meters)
	// Target 2 takes 20 steps to finish a request, the others 1.
	type req struct{ target, due int }
	var out []req
	counts := make([]int, 3)
	for step := 0; step < 20000; step++ {
		kept := out[:0]
		for _, r := range out {
			if r.due <= step {
				meters[r.target].Done()
			} else {
				kept = append(kept, r)
			}
		}
		out = kept
		for len(out) < 16 {
			i, _ := p.Pick()
			counts[i]++
			meters[i].Start()
			d := 1
			if i == 2 {
				d = 20
			}
			out = append(out, req{i, step + d})
		}
	}
	total := counts[0] + counts[1] + counts[2]
	if frac := float64(counts[2]) / float64(total); frac > 0.10 {
		t.Errorf("the slow target got %.1f%% of requests (%v), want well under its third", 100*frac, counts)
	}
}

func BenchmarkPick(b *testing.B) {
	items, meters := newSet(1, 2, 3)
	p := New(items, meters)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Pick()
		}
	})
}
