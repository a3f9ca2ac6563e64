// Package procs fits GOMAXPROCS to the load l7lb carries.
//
// A proxy mostly moves small messages between sockets: every message
// readies a goroutine, and with an idle P around, the Go scheduler wakes
// a second OS thread to run it (a futex wake, a context switch, a
// work-stealing spin) instead of running it on the P that readied it. At
// loads one core carries comfortably, that hand-off is a large part of
// l7lb's CPU per request: on a 2-core machine l7lb spent about a fifth
// less CPU per small RPC with one P than with two, at the same or better
// throughput and latency (bench/, workloads a, b and d).
//
// So the controller runs l7lb on as few Ps as the load needs. It watches
// the process's CPU time (getrusage): when the Ps are nearly busy it adds
// as many as the load asks for at once; when the load would fit in one P
// fewer with room to spare, sample after sample for a while, it gives one
// back. Scheduling latency is not a signal here: on a shared machine it
// mostly measures other processes holding the CPUs, which more Ps cannot
// fix. A fixed GOMAXPROCS (environment or --procs N) turns it off.
package procs

import (
	"context"
	"log/slog"
	"math"
	goruntime "runtime"
	"syscall"
	"time"
)

// Policy is when to add and remove Ps; Defaults gives production values.
type Policy struct {
	Max      int           // upper bound: the GOMAXPROCS the runtime chose at start
	Interval time.Duration // sampling period

	// UpBusy: add Ps when the process uses more than this fraction of
	// the Ps it has (in cores).
	UpBusy float64
	// DownBusy, DownAfter: remove a P when the load would keep one P
	// fewer below this fraction, sample after sample, for DownAfter.
	DownBusy  float64
	DownAfter time.Duration
}

// Defaults returns the policy l7lb serves with on up to max Ps.
func Defaults(max int) Policy {
	return Policy{
		Max:       max,
		Interval:  250 * time.Millisecond,
		UpBusy:    0.75,
		DownBusy:  0.6,
		DownAfter: time.Second,
	}
}

// Decide returns the number of Ps to run with, given the current number,
// the cores the process used over the last interval, and how long the
// load has fitted in one P fewer; fits reports whether it still does.
func (p Policy) Decide(cur int, busy float64, fitFor time.Duration) (next int, fits bool) {
	switch {
	case cur < p.Max && busy > p.UpBusy*float64(cur):
		// Grow by what the load asks for, at least one P.
		want := max(cur+1, int(math.Ceil(busy/p.UpBusy)))
		return min(want, p.Max), false
	case cur > 1 && busy < p.DownBusy*float64(cur-1):
		if fitFor+p.Interval >= p.DownAfter {
			return cur - 1, false
		}
		return cur, true
	}
	return min(cur, p.Max), false
}

// Controller applies a Policy to the process.
type Controller struct {
	Policy Policy
	Log    *slog.Logger
	// OnChange, when set, is told every change (for metrics).
	OnChange func(int)
	// Busy returns the cores the process used since its last call; nil
	// reads getrusage. Tests put a script here.
	Busy func() float64
}

// Run adapts GOMAXPROCS until ctx ends, then sets it back to Policy.Max.
func (c *Controller) Run(ctx context.Context) {
	pol := c.Policy
	if pol.Max <= 1 || pol.Interval <= 0 {
		return
	}
	busy := c.Busy
	if busy == nil {
		busy = newCPUMeter().busy
	}
	cur := goruntime.GOMAXPROCS(0)
	set := func(n int, load float64) {
		if n == cur {
			return
		}
		goruntime.GOMAXPROCS(n)
		if c.Log != nil {
			c.Log.Info("parallelism fitted to the load", "gomaxprocs", n, "was", cur, "cores_busy", math.Round(load*100)/100)
		}
		cur = n
		if c.OnChange != nil {
			c.OnChange(n)
		}
	}
	defer func() { set(pol.Max, 0) }()

	t := time.NewTicker(pol.Interval)
	defer t.Stop()
	var fitFor time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		load := busy()
		next, fits := pol.Decide(cur, load, fitFor)
		if fits {
			fitFor += pol.Interval
		} else {
			fitFor = 0
		}
		set(next, load)
	}
}

// cpuMeter measures the cores the process used between calls.
type cpuMeter struct {
	last    time.Time
	lastCPU time.Duration
}

func newCPUMeter() *cpuMeter { return &cpuMeter{last: time.Now(), lastCPU: processCPU()} }

func (m *cpuMeter) busy() float64 {
	now, cpu := time.Now(), processCPU()
	var b float64
	if wall := now.Sub(m.last); wall > 0 {
		b = float64(cpu-m.lastCPU) / float64(wall)
	}
	m.last, m.lastCPU = now, cpu
	return b
}

// processCPU is the user plus system time of the whole process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
