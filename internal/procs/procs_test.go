package procs

import (
	"context"
	"math"
	goruntime "runtime"
	"sync"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	p := Defaults(4)
	free := math.Inf(1) // the machine's idle CPU unknown
	tests := []struct {
		name     string
		cur      int
		load     Load
		fitFor   time.Duration
		want     int
		wantFits bool
	}{
		{"light load on one P stays", 1, Load{0.5, free}, 0, 1, false},
		{"busy P gets company", 1, Load{0.8, free}, 0, 2, false},
		{"a burst asks for what it needs at once", 1, Load{2.9, free}, 0, 4, false},
		{"never above Max", 3, Load{3.9, free}, 0, 4, false},
		{"at Max stays", 4, Load{4.0, free}, 0, 4, false},
		{"no idle CPU: no more Ps", 1, Load{0.95, 0.2}, 0, 1, false},
		{"no more Ps than idle CPUs", 1, Load{2.9, 1.4}, 0, 3, false},
		{"fits in fewer: counted first", 2, Load{0.4, free}, 0, 2, true},
		{"fits in fewer long enough: one P back", 2, Load{0.4, 0}, time.Second, 1, false},
		{"middle band holds", 2, Load{0.7, free}, time.Minute, 2, false},
		{"one P is the floor", 1, Load{0, free}, time.Minute, 1, false},
		{"steps down one at a time", 4, Load{0.1, free}, time.Minute, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fits := p.Decide(tt.cur, tt.load, tt.fitFor)
			if got != tt.want || fits != tt.wantFits {
				t.Fatalf("Decide(%d, %+v, %v) = %d, %v; want %d, %v", tt.cur, tt.load, tt.fitFor, got, fits, tt.want, tt.wantFits)
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

func (s *script) measure() Load {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, goruntime.GOMAXPROCS(0))
	if len(s.seen) > len(s.loads) {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
		return Load{}
	}
	return Load{Busy: s.loads[len(s.seen)-1], Idle: math.Inf(1)}
}

func TestControllerFollowsTheLoad(t *testing.T) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(0))
	goruntime.GOMAXPROCS(3)
	pol := Policy{Max: 3, Interval: 5 * time.Millisecond, UpBusy: 0.75, DownBusy: 0.6, DownAfter: 10 * time.Millisecond}
	// Run starts on one P; a load of 0.8 cores wants a second, 2 cores a
	// third; 1 core fits in two after DownAfter, nothing in one.
	s := &script{loads: []float64{0, 0.8, 2, 2, 1, 1, 1, 0, 0, 0}, done: make(chan struct{})}
	var changes []int
	var mu sync.Mutex
	c := &Controller{Policy: pol, Measure: s.measure, OnChange: func(n int) { mu.Lock(); changes = append(changes, n); mu.Unlock() }}
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
	want := []int{1, 1, 2, 3, 3, 3, 2, 2, 2, 1}
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
	c := &Controller{Policy: Policy{Max: 1, Interval: time.Millisecond}, Measure: func() Load { called = true; return Load{} }}
	c.Run(context.Background()) // returns at once
	if called {
		t.Fatal("a one-CPU controller sampled the load")
	}
}

// The meter reads the process's own CPU time and the machine's idle time.
func TestMeter(t *testing.T) {
	m := newMeter()
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for i := 0; i < 1e9 && time.Now().Before(deadline); i++ {
		x += i
	}
	_ = x
	l := m.load()
	cpus := float64(goruntime.NumCPU())
	if l.Busy <= 0 || l.Busy > cpus+1 {
		t.Fatalf("busy after spinning 50 ms is %.2f cores, want between 0 and the CPUs", l.Busy)
	}
	if l.Idle < 0 || l.Idle > cpus+1 {
		t.Fatalf("machine idle %.2f cores, want between 0 and the CPUs", l.Idle)
	}
}

func TestParseIdle(t *testing.T) {
	tests := []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		{"cpu  800931 312 328770 1075469 4894 0 66470 1667 0 0\ncpu0 1 2 3 4 5\n", (1075469 + 4894) * 10 * time.Millisecond, true},
		{"cpu0 1 2 3 4 5\n", 0, false},
		{"cpu  1 2 3\n", 0, false},
		{"cpu  1 2 3 x 5\n", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseIdle([]byte(tt.stat))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseIdle(%q) = %v, %v; want %v, %v", tt.stat, got, ok, tt.want, tt.ok)
		}
	}
}
