package roundrobin

import (
	"sync"
	"testing"
)

func TestPickEvenSplit(t *testing.T) {
	tests := []struct {
		name    string
		items   []string
		picks   int
		perItem int
	}{
		{"three", []string{"a", "b", "c"}, 300, 100},
		{"one", []string{"a"}, 10, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(tc.items)
			counts := map[string]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ { // concurrent pickers must still split evenly
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < tc.picks/4+boolInt(g < tc.picks%4); i++ {
						it, ok := p.Pick()
						if !ok {
							t.Error("no item")
							return
						}
						mu.Lock()
						counts[it]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			for _, it := range tc.items {
				if counts[it] != tc.perItem {
					t.Errorf("%s picked %d times, want %d (%v)", it, counts[it], tc.perItem, counts)
				}
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPickEmpty(t *testing.T) {
	if _, ok := New[int](nil).Pick(); ok {
		t.Fatal("Pick on empty picker returned ok")
	}
}

func BenchmarkPick(b *testing.B) {
	p := New([]int{1, 2, 3})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Pick()
		}
	})
}
