// Package procs fits GOMAXPROCS to the load l7lb carries.
//
// A proxy mostly moves small messages between sockets: every message
// readies a goroutine, and with an idle P around, the Go scheduler wakes
// a second OS thread to run it (a futex wake, a context switch, a
// work-stealing spin) instead of running it on the P that readied it. At
// loads one core carries comfortably, that hand-off is a large part of
// l7lb's CPU per request: on a 2-core machine l7lb spent 12-20 % less
// CPU per RPC with one P than with two (bench/, workloads a, b and d, in
// alternating runs), at the same or better throughput.
//
// So the controller runs l7lb on as few Ps as the load needs. It watches
// the process's CPU time (getrusage) and the machine's idle time
// (/proc/stat): when the Ps are nearly busy and the machine has a CPU to
// spare, it adds as many as the load asks for at once; when the load would
// fit in one P fewer with room to spare, sample after sample for a while,
// it gives one back. A P more on a machine without idle CPU would only
// add contention and hand-offs. Scheduling latency is not a signal
// either: on a shared machine it mostly measures other processes holding
// the CPUs, which more Ps cannot fix. A fixed GOMAXPROCS (environment or
// --procs N) turns the controller off.
package procs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"
)

// Policy is when to add and remove Ps; Defaults gives production values.
type Policy struct {
	Max      int           // upper bound: the GOMAXPROCS the runtime chose at start
	Interval time.Duration // sampling period

	// UpBusy, UpIdle: add Ps when the process uses more than UpBusy of
	// the Ps it has (in cores) and the machine has at least UpIdle cores
	// idle to run another.
	UpBusy float64
	UpIdle float64
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
		UpIdle:    0.5,
		DownBusy:  0.6,
		DownAfter: time.Second,
	}
}

// Load is what the controller sees over one interval, in cores.
type Load struct {
	Busy float64 // CPU the process used
	Idle float64 // CPU the machine left idle (+Inf when unknown)
}

// Decide returns the number of Ps to run with, given the current number,
// the last interval's load, and how long the load has fitted in one P
// fewer; fits reports whether it still does.
func (p Policy) Decide(cur int, l Load, fitFor time.Duration) (next int, fits bool) {
	switch {
	case cur < p.Max && l.Busy > p.UpBusy*float64(cur) && l.Idle >= p.UpIdle:
		// Grow by what the load asks for, at least one P, at most what
		// the idle CPUs can run.
		want := max(cur+1, int(math.Ceil(l.Busy/p.UpBusy)))
		if !math.IsInf(l.Idle, 1) {
			want = min(want, cur+int(math.Ceil(l.Idle)))
		}
		return min(want, p.Max), false
	case cur > 1 && l.Busy < p.DownBusy*float64(cur-1):
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
	// Measure returns the load since its last call; nil reads getrusage
	// and /proc/stat. Tests put a script here.
	Measure func() Load
}

// Run adapts GOMAXPROCS, starting from one P, until ctx ends; then it sets
// it back to Policy.Max.
func (c *Controller) Run(ctx context.Context) {
	pol := c.Policy
	if pol.Max <= 1 || pol.Interval <= 0 {
		return
	}
	measure := c.Measure
	if measure == nil {
		measure = newMeter().load
	}
	cur := goruntime.GOMAXPROCS(0)
	// set applies n; load is why (nil at start and stop, which are not
	// worth a log line).
	set := func(n int, load *Load) {
		if n == cur {
			return
		}
		goruntime.GOMAXPROCS(n)
		if c.Log != nil && load != nil {
			c.Log.Info("parallelism fitted to the load", "gomaxprocs", n, "was", cur,
				"cores_busy", math.Round(load.Busy*100)/100, "machine_cores_idle", math.Round(load.Idle*100)/100)
		}
		cur = n
		if c.OnChange != nil {
			c.OnChange(n)
		}
	}
	// Start on one P: the load that comes gets more within an interval.
	set(1, nil)
	defer set(pol.Max, nil)

	t := time.NewTicker(pol.Interval)
	defer t.Stop()
	var fitFor time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		load := measure()
		next, fits := pol.Decide(cur, load, fitFor)
		if fits {
			fitFor += pol.Interval
		} else {
			fitFor = 0
		}
		set(next, &load)
	}
}

// meter measures the process's CPU time and the machine's idle time
// between calls.
type meter struct {
	last     time.Time
	lastCPU  time.Duration
	lastIdle time.Duration
	idleOK   bool
}

func newMeter() *meter {
	m := &meter{last: time.Now(), lastCPU: processCPU()}
	m.lastIdle, m.idleOK = machineIdle()
	return m
}

func (m *meter) load() Load {
	now, cpu := time.Now(), processCPU()
	idle, ok := machineIdle()
	l := Load{Idle: math.Inf(1)}
	if wall := now.Sub(m.last); wall > 0 {
		l.Busy = float64(cpu-m.lastCPU) / float64(wall)
		if ok && m.idleOK {
			l.Idle = float64(idle-m.lastIdle) / float64(wall)
		}
	}
	m.last, m.lastCPU, m.lastIdle, m.idleOK = now, cpu, idle, ok
	return l
}

// processCPU is the user plus system time of the whole process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineIdle is the idle plus iowait time of all CPUs since boot, from
// the first line of /proc/stat (in USER_HZ ticks: 1/100 s on Linux).
func machineIdle() (time.Duration, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var buf [512]byte
	n, _ := io.ReadFull(f, buf[:])
	return parseIdle(buf[:n])
}

func parseIdle(stat []byte) (time.Duration, bool) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := bytes.Fields(line)
	// cpu user nice system idle iowait ...
	if len(f) < 6 || string(f[0]) != "cpu" {
		return 0, false
	}
	var ticks int64
	for _, v := range f[4:6] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100, true
}
