package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Record is one workload × balancer × run; one JSON line each.
type Record struct {
	Time        string           `json:"time"`
	Run         int              `json:"run"`
	Workload    string           `json:"workload"`
	Balancer    string           `json:"balancer"`
	WindowS     float64          `json:"window_s"`
	Ops         int64            `json:"ops"`               // RPCs (f: round trips) completed in the window
	Streams     int64            `json:"streams,omitempty"` // f: streams completed in the window
	RPS         float64          `json:"rps"`
	MBps        float64          `json:"mb_per_s"` // payload, both directions, 10^6 B/s
	P50ms       float64          `json:"p50_ms"`
	P99ms       float64          `json:"p99_ms"`
	MaxMs       float64          `json:"max_ms"`
	CPUusPerRPC *float64         `json:"balancer_cpu_us_per_rpc"`                 // utime+stime of the balancer's processes / ops
	CPUCores    *float64         `json:"balancer_cpu_cores"`                      // the same over the window's length
	UserUs      *float64         `json:"balancer_user_us_per_rpc,omitempty"`      // the user-time part of it
	SysUs       *float64         `json:"balancer_sys_us_per_rpc,omitempty"`       // the system-time part of it
	ReadCalls   *float64         `json:"balancer_read_calls_per_rpc,omitempty"`   // read-family syscalls (/proc/PID/io syscr) / ops
	WriteCalls  *float64         `json:"balancer_write_calls_per_rpc,omitempty"`  // write-family syscalls (syscw) / ops
	CtxSwitches *float64         `json:"balancer_ctx_switches_per_rpc,omitempty"` // voluntary + involuntary / ops
	PeakRSSMiB  *float64         `json:"balancer_peak_rss_mib"`                   // peak of the summed VmRSS, sampled every 20 ms
	HWMMiB      *float64         `json:"balancer_vmhwm_mib"`                      // sum of VmHWM over its processes at the end
	Procs       int              `json:"balancer_procs"`
	BackendCPU  float64          `json:"backend_cpu_us_per_rpc"`
	ClientCPU   float64          `json:"client_cpu_us_per_rpc"`
	Split       []int64          `json:"split"`             // RPCs started per backend listener in the window
	SplitDevPct *float64         `json:"split_max_dev_pct"` // max (|count − even| − 1 RPC) / even, in %
	Errors      map[string]int64 `json:"errors"`            // by gRPC code, warm-up and window
	ErrorsTotal int64            `json:"errors_total"`
	FirstError  string           `json:"first_error,omitempty"`
	Failed      string           `json:"failed,omitempty"` // the balancer could not be started or measured
}

func fptr(v float64) *float64 { return &v }

// Report is what a run produced.
type Report struct {
	Records  []Record
	Notes    []string
	Checks   []Check
	AllPass  bool
	Versions map[string]string
	Meta     Meta
	Cfg      config
	Order    []string
}

func run(cfg config) (*Report, error) {
	root := cfg.Root
	if root == "" {
		r, err := findRoot()
		if err != nil {
			return nil, err
		}
		root = r
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join(root, "bench", "results")
	}
	if cfg.Repeat < 1 || cfg.Repeat > 100 {
		return nil, fmt.Errorf("-repeat must be 1..100")
	}
	var workloads []Workload
	for _, name := range cfg.Workloads {
		found := false
		for _, w := range allWorkloads {
			if w.Name == name {
				workloads = append(workloads, w)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown workload %q (a..f)", name)
		}
	}
	rep := &Report{Versions: map[string]string{}, Cfg: cfg}
	// Balancers: direct, l7lb, then the peers that are (or can be) installed.
	order := []string{}
	if cfg.Direct {
		order = append(order, "direct")
	}
	order = append(order, "l7lb")
	var variants []balancerVariant
	if len(cfg.Balance) > 0 {
		// Only the peers that have a least-connections algorithm here.
		var notes []string
		var err error
		if variants, notes, err = balanceVariants(cfg); err != nil {
			return nil, err
		}
		for _, n := range notes {
			fmt.Println("note:", n)
			rep.Notes = append(rep.Notes, n)
		}
		var peers []string
		for _, v := range variants {
			if v.Kind != "l7lb" {
				peers = append(peers, v.Kind)
			}
		}
		cfg.Peers = peers
	}
	for _, p := range cfg.Peers {
		known := false
		for _, k := range peerNames {
			known = known || k == p
		}
		if !known {
			return nil, fmt.Errorf("unknown peer %q (nginx, haproxy, caddy)", p)
		}
		if note := ensurePeer(p, cfg.Install); note != "" {
			fmt.Println("note:", note)
			rep.Notes = append(rep.Notes, note)
			continue
		}
		order = append(order, p)
	}
	rep.Order = order
	if len(cfg.Balance) > 0 {
		// Drop the variants whose peer was skipped (not installed).
		kept := variants[:0]
		for _, v := range variants {
			if contains(order, v.Kind) {
				kept = append(kept, v)
			}
		}
		variants = kept
	}

	dir, err := os.MkdirTemp("", "l7lb-bench-")
	if err != nil {
		return nil, err
	}
	if cfg.Keep {
		fmt.Println("scratch directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	e := &env{Dir: dir, Root: root, Workers: cfg.Workers, L7LBFlags: cfg.L7LBFlags}
	if err := e.makeCerts(); err != nil {
		return nil, err
	}
	if cfg.L7LBBin == "" {
		fmt.Println("building l7lb from", root)
	}
	if err := e.buildL7LB(cfg.L7LBBin); err != nil {
		return nil, err
	}
	for _, b := range order {
		rep.Versions[b] = versionOf(e, b)
	}
	if len(cfg.Balance) > 0 {
		// The scenarios start their own backends, one process each.
		rep.Meta = collectMeta(root)
		if rep.Meta.LoadStart > float64(rep.Meta.NProc)/4 {
			fmt.Printf("warning: load average %.2f before the run: something else is using the CPUs\n", rep.Meta.LoadStart)
		}
		br, err := runBalance(cfg, e, variants, rep.Versions, rep.Notes, rep.Meta)
		if err != nil {
			return nil, err
		}
		rep.Checks, rep.AllPass = br.Checks, br.AllPass
		return rep, nil
	}
	be, err := startBackend(dir)
	if err != nil {
		return nil, err
	}
	defer be.Stop()
	e.Backends = be.Addrs
	stats, err := newBackendStatsClient(be.Addrs[0])
	if err != nil {
		return nil, err
	}
	defer stats.Close()
	rep.Meta = collectMeta(root)
	if rep.Meta.LoadStart > float64(rep.Meta.NProc)/4 {
		fmt.Printf("warning: load average %.2f before the run: something else is using the CPUs\n", rep.Meta.LoadStart)
	}
	if cfg.Idle > 0 {
		rep.AllPass = true
		return rep, runIdle(cfg, e, order, rep.Meta)
	}
	if len(cfg.Abuse) > 0 {
		if _, err := runAbuse(cfg, e, order, rep.Versions, rep.Notes, rep.Meta); err != nil {
			return nil, err
		}
		rep.AllPass = true
		return rep, nil
	}

	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	jf, err := os.Create(filepath.Join(cfg.Out, "results.jsonl"))
	if err != nil {
		return nil, err
	}
	defer jf.Close()
	enc := json.NewEncoder(jf)

	total := cfg.Repeat * len(workloads) * len(order)
	est := time.Duration(total) * (cfg.Warmup + cfg.Duration + time.Second)
	fmt.Printf("%d measurements (%d runs × %d workloads × %d balancers: %v), about %v\n",
		total, cfg.Repeat, len(workloads), len(order), order, est.Round(time.Second))
	seq := 0
	for r := 1; r <= cfg.Repeat; r++ {
		for _, w := range workloads {
			for _, b := range order {
				seq++
				rec := measure(e, be, stats, b, w, r, seq, cfg)
				rep.Records = append(rep.Records, rec)
				if err := enc.Encode(rec); err != nil {
					return nil, err
				}
				printProgress(seq, total, rec)
			}
		}
	}
	rep.Meta.LoadEnd = loadAvg()
	rep.Checks, rep.AllPass = checkTargets(rep, workloads)
	if err := writeReports(rep, workloads); err != nil {
		return nil, err
	}
	return rep, nil
}

func printProgress(seq, total int, r Record) {
	if r.Failed != "" {
		fmt.Printf("[%d/%d] run %d %s %-7s FAILED: %s\n", seq, total, r.Run, r.Workload, r.Balancer, r.Failed)
		return
	}
	cpu := "—"
	if r.CPUusPerRPC != nil {
		cpu = fmt.Sprintf("%.1f", *r.CPUusPerRPC)
		if r.UserUs != nil {
			// where the CPU went: user/system time, read and write
			// syscalls and context switches, all per RPC
			cpu += fmt.Sprintf("(usr %.1f sys %.1f rd %.2f wr %.2f cs %.2f)",
				*r.UserUs, *r.SysUs, *r.ReadCalls, *r.WriteCalls, *r.CtxSwitches)
		}
	}
	rss := "—"
	if r.PeakRSSMiB != nil {
		rss = fmt.Sprintf("%.0f", *r.PeakRSSMiB)
	}
	fmt.Printf("[%d/%d] run %d %s %-7s rps=%.0f MB/s=%.0f p50=%.2fms p99=%.2fms cpu=%sµs/rpc rss=%sMiB split=%v errors=%d\n",
		seq, total, r.Run, r.Workload, r.Balancer, r.RPS, r.MBps, r.P50ms, r.P99ms, cpu, rss, r.Split, r.ErrorsTotal)
}

// measure starts a fresh balancer, runs one workload through it and stops it.
func measure(e *env, be *backendProc, stats *backendStatsClient, name string, w Workload, runNo, seq int, cfg config) Record {
	rec := Record{Time: time.Now().UTC().Format(time.RFC3339), Run: runNo, Workload: w.Name, Balancer: name, Errors: map[string]int64{}}
	bal, err := startBalancer(e, name, seq)
	if err != nil {
		rec.Failed = err.Error()
		return rec
	}
	defer bal.Stop()
	var sampler *rssSampler
	if bal.Pid != 0 {
		sampler = startRSSSampler(bal.Pid, 20*time.Millisecond)
	}
	var pids []int
	var cpu0, bcpu0, ccpu0 time.Duration
	var counts0, counts1 []int64
	var cpu1, bcpu1, ccpu1 time.Duration
	var pc0, pc1 procCounters
	var cerr error
	h := hooks{
		windowStart: func() {
			if bal.Pid != 0 {
				pids = procTree(bal.Pid)
				pc0 = treeCounters(pids)
				cpu0 = pc0.User + pc0.Sys
			}
			bcpu0, ccpu0 = cpuTime(be.Pid), cpuTime(os.Getpid())
			counts0, cerr = stats.counts()
		},
		windowEnd: func() {
			if bal.Pid != 0 {
				pc1 = treeCounters(pids)
				cpu1 = pc1.User + pc1.Sys
			}
			bcpu1, ccpu1 = cpuTime(be.Pid), cpuTime(os.Getpid())
			var err error
			counts1, err = stats.counts()
			if cerr == nil {
				cerr = err
			}
		},
	}
	warmup, window := cfg.Warmup, cfg.Duration
	if window < w.MinWindow {
		// e: 1 GiB in flight completes in batches a second or more apart;
		// a shorter window would see none of them.
		window = w.MinWindow
	}
	res, err := runLoad(bal.target(e), w, warmup, window, h)
	var peak int64
	if sampler != nil {
		peak = sampler.Stop()
	}
	if err != nil {
		rec.Failed = err.Error()
		return rec
	}
	rec.WindowS = res.Window.Seconds()
	rec.Ops, rec.Streams = res.Ops, res.Streams
	rec.RPS = float64(res.Ops) / rec.WindowS
	rec.MBps = float64(res.Ops) * float64(w.bytesPerOp()) / rec.WindowS / 1e6
	rec.P50ms, rec.P99ms, rec.MaxMs = pct(res.Latencies, 0.50), pct(res.Latencies, 0.99), pct(res.Latencies, 1)
	for k, v := range res.Errors {
		rec.Errors[k] = v
		rec.ErrorsTotal += v
	}
	rec.FirstError = res.FirstErr
	if res.Ops > 0 {
		if bal.Pid != 0 {
			ops := float64(res.Ops)
			rec.CPUusPerRPC = fptr(float64(cpu1-cpu0) / float64(time.Microsecond) / ops)
			d := pc1.sub(pc0)
			rec.UserUs = fptr(float64(d.User) / float64(time.Microsecond) / ops)
			rec.SysUs = fptr(float64(d.Sys) / float64(time.Microsecond) / ops)
			rec.ReadCalls = fptr(float64(d.ReadCalls) / ops)
			rec.WriteCalls = fptr(float64(d.WriteCalls) / ops)
			rec.CtxSwitches = fptr(float64(d.VoluntarySwitches+d.InvoluntarySwitches) / ops)
		}
		rec.BackendCPU = float64(bcpu1-bcpu0) / float64(time.Microsecond) / float64(res.Ops)
		rec.ClientCPU = float64(ccpu1-ccpu0) / float64(time.Microsecond) / float64(res.Ops)
	}
	if bal.Pid != 0 {
		rec.CPUCores = fptr((cpu1 - cpu0).Seconds() / rec.WindowS)
		rec.PeakRSSMiB = fptr(float64(peak) / 1024)
		rec.HWMMiB = fptr(float64(treeKB(procTree(bal.Pid), "VmHWM")) / 1024)
		rec.Procs = len(pids)
	}
	if cerr == nil && len(counts0) == len(counts1) {
		rec.Split = make([]int64, len(counts1))
		var sum int64
		for i := range counts1 {
			rec.Split[i] = counts1[i] - counts0[i]
			sum += rec.Split[i]
		}
		if name != "direct" && sum > 0 {
			even := float64(sum) / float64(len(rec.Split))
			var dev float64
			for _, c := range rec.Split {
				// ±1 RPC is the window's edges cutting a perfect rotation
				if d := max(abs(float64(c)-even)-1, 0) / even * 100; d > dev {
					dev = d
				}
			}
			rec.SplitDevPct = fptr(dev)
		}
	} else if cerr != nil {
		rec.FirstError += " (backend counts: " + cerr.Error() + ")"
	}
	return rec
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i]) / float64(time.Millisecond)
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
