package procs

import (
	"context"
	goruntime "runtime"
	"sync"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	p := Defaults(4)
	tests := []struct {
		name     string
		cur      int
		busy     float64
		fitFor   time.Duration
		want     int
		wantFits bool
	}{
		{"light load on one P stays", 1, 0.5, 0, 1, false},
		{"busy P gets company", 1, 0.8, 0, 2, false},
		{"a burst asks for what it needs at once", 1, 2.9, 0, 4, false},
		{"never above Max", 3, 3.9, 0, 4, false},
		{"at Max stays", 4, 4.0, 0, 4, false},
		{"fits in fewer: counted first", 2, 0.4, 0, 2, true},
		{"fits in fewer long enough: one P back", 2, 0.4, 2 * time.Second, 1, false},
		{"middle band holds", 2, 0.7, time.Minute, 2, false},
		{"one P is the floor", 1, 0, time.Minute, 1, false},
		{"steps down one at a time", 4, 0.1, time.Minute, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fits := p.Decide(tt.cur, tt.busy, tt.fitFor)
			if got != tt.want || fits != tt.wantFits {
				t.Fatalf("Decide(%d, %.1f, %v) = %d, %v; want %d, %v", tt.cur, tt.busy, tt.fitFor, got, fits, tt.want, tt.wantFits)
			}
		})
	}
}

// script feeds the controller a load per sample and records what
// GOMAXPROCS was at each sample.
type script struct {
	mu    sync.Mutex
	loads []float64
	seen  []int
	done  chan struct{}
}

func (s *script) busy() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, goruntime.GOMAXPROCS(0))
	if len(s.seen) > len(s.loads) {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
		return 0
	}
	return s.loads[len(s.seen)-1]
}

func TestControllerFollowsTheLoad(t *testing.T) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(0))
	goruntime.GOMAXPROCS(3)
	pol := Policy{Max: 3, Interval: 5 * time.Millisecond, UpBusy: 0.75, DownBusy: 0.6, DownAfter: 10 * time.Millisecond}
	// idle (down to 1), then a load of 2 cores (up to 3), then 1 core
	// (down to 2 after DownAfter)
	s := &script{loads: []float64{0, 0, 0, 0, 0, 0, 2, 2, 1, 1, 1, 1}, done: make(chan struct{})}
	var changes []int
	var mu sync.Mutex
	c := &Controller{Policy: pol, Busy: s.busy, OnChange: func(n int) { mu.Lock(); changes = append(changes, n); mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { c.Run(ctx); close(stopped) }()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the controller did not sample the whole script in 10 s")
	}
	cancel()
	<-stopped

	s.mu.Lock()
	defer s.mu.Unlock()
	// GOMAXPROCS as seen at each sample, before deciding on it
	want := []int{3, 3, 2, 2, 1, 1, 1, 3, 3, 3, 2, 2}
	for i, w := range want {
		if s.seen[i] != w {
			t.Fatalf("GOMAXPROCS at the samples was %v, want %v", s.seen[:len(want)], want)
		}
	}
	if n := goruntime.GOMAXPROCS(0); n != 3 {
		t.Fatalf("GOMAXPROCS after Run is %d, want Max (3)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) < 4 || changes[len(changes)-1] != 3 {
		t.Fatalf("OnChange saw %v, want every change ending with 3", changes)
	}
}

func TestControllerOffWithOneCPU(t *testing.T) {
	called := false
	c := &Controller{Policy: Policy{Max: 1, Interval: time.Millisecond}, Busy: func() float64 { called = true; return 0 }}
	c.Run(context.Background()) // returns at once
	if called {
		t.Fatal("a one-CPU controller sampled the load")
	}
}

// The meter reads the process's own CPU time.
func TestCPUMeter(t *testing.T) {
	m := newCPUMeter()
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for i := 0; i < 1e9 && time.Now().Before(deadline); i++ {
		x += i
	}
	_ = x
	b := m.busy()
	if b <= 0 || b > float64(goruntime.NumCPU())+1 {
		t.Fatalf("busy after spinning 50 ms is %.2f cores, want between 0 and the CPUs", b)
	}
}
