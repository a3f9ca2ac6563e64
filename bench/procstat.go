package main

// CPU time and memory of a process tree, from /proc.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const clkTck = 100 // USER_HZ on Linux

// procTree returns root and all its descendants (by ppid), a bounded walk.
func procTree(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := statFields(string(b))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out) && i < 10000; i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statFields returns the fields of /proc/<pid>/stat after the command name:
// [0] is state (field 3), so field k (1-based, man proc) is at index k-3.
func statFields(s string) []string {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// cpuTime is utime+stime of pid (all its threads, live and exited).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := statFields(string(b))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * time.Second / clkTck
}

// procCounters are the per-process counters that explain where a
// balancer's CPU goes: user and system time, read- and write-family
// syscalls (/proc/PID/io syscr, syscw) and context switches.
type procCounters struct {
	User, Sys           time.Duration
	ReadCalls           int64
	WriteCalls          int64
	VoluntarySwitches   int64
	InvoluntarySwitches int64
}

func (c procCounters) sub(o procCounters) procCounters {
	return procCounters{
		User: c.User - o.User, Sys: c.Sys - o.Sys,
		ReadCalls: c.ReadCalls - o.ReadCalls, WriteCalls: c.WriteCalls - o.WriteCalls,
		VoluntarySwitches:   c.VoluntarySwitches - o.VoluntarySwitches,
		InvoluntarySwitches: c.InvoluntarySwitches - o.InvoluntarySwitches,
	}
}

// treeCounters sums procCounters over pids; a counter that cannot be read
// (another user's process, one that exited) counts as zero.
func treeCounters(pids []int) procCounters {
	var c procCounters
	for _, p := range pids {
		dir := "/proc/" + strconv.Itoa(p) + "/"
		if b, err := os.ReadFile(dir + "stat"); err == nil {
			if f := statFields(string(b)); len(f) >= 13 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				c.User += time.Duration(ut) * time.Second / clkTck
				c.Sys += time.Duration(st) * time.Second / clkTck
			}
		}
		c.ReadCalls += keyValue(dir+"io", "syscr")
		c.WriteCalls += keyValue(dir+"io", "syscw")
		// Context switches are counted per thread.
		tasks, _ := os.ReadDir(dir + "task")
		for _, task := range tasks {
			st := dir + "task/" + task.Name() + "/status"
			c.VoluntarySwitches += keyValue(st, "voluntary_ctxt_switches")
			c.InvoluntarySwitches += keyValue(st, "nonvoluntary_ctxt_switches")
		}
	}
	return c
}

// keyValue reads the first number after "key:" in a /proc file of
// "key: value" lines, 0 when absent.
func keyValue(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// statusKB reads a "Vm...:   N kB" line of /proc/<pid>/status.
func statusKB(pid int, key string) int64 {
	return keyValue("/proc/"+strconv.Itoa(pid)+"/status", key)
}

func treeKB(pids []int, key string) int64 {
	var n int64
	for _, p := range pids {
		n += statusKB(p, key)
	}
	return n
}

// rssSampler samples the summed VmRSS of a process tree every interval and
// keeps the peak. The tree is re-read every second (nginx may respawn).
type rssSampler struct {
	root   int
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	peakKB int64
}

func startRSSSampler(root int, every time.Duration) *rssSampler {
	s := &rssSampler{root: root, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		pids := procTree(root)
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for i := 0; i < 10_000_000; i++ {
			kb := treeKB(pids, "VmRSS")
			s.mu.Lock()
			if kb > s.peakKB {
				s.peakKB = kb
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			if time.Since(last) > time.Second {
				pids, last = procTree(root), time.Now()
			}
		}
	}()
	return s
}

func (s *rssSampler) Stop() int64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakKB
}
