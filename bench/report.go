package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Meta describes the machine and the toolchain of a run.
type Meta struct {
	Date               string
	NProc              int
	CPU                string
	Kernel             string
	MemGiB             float64
	OS                 string
	Go                 string
	Command            string
	LoadStart, LoadEnd float64 // 1-minute load average before and after
}

func loadAvg() float64 {
	var v float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &v)
	}
	return v
}

func collectMeta(root string) Meta {
	m := Meta{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), NProc: runtime.NumCPU(), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				fmt.Sscan(strings.TrimPrefix(l, "MemTotal:"), &kb)
			}
		}
		m.MemGiB = kb / 1024 / 1024
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	} else {
		m.Go = runtime.Version()
	}
	return m
}

func commandLine(cfg config) string {
	if cfg.Quick {
		return "go run ./bench -quick"
	}
	var b strings.Builder
	b.WriteString("go run ./bench")
	if len(cfg.Peers) > 0 {
		b.WriteString(" -peers " + strings.Join(cfg.Peers, ","))
	}
	fmt.Fprintf(&b, " -duration %v -repeat %d", cfg.Duration, cfg.Repeat)
	if cfg.Warmup != 2*time.Second {
		fmt.Fprintf(&b, " -warmup %v", cfg.Warmup)
	}
	if w := strings.Join(cfg.Workloads, ","); w != "a,b,c,d,e,f" {
		b.WriteString(" -workloads " + w)
	}
	b.WriteString(" -out bench/results")
	return b.String()
}

// metric is one column of the tables.
type metric struct {
	key, title string
	higher     bool // higher is better
	get        func(Record) *float64
	format     func(float64) string
}

func fnum(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

var metrics = []metric{
	{"rps", "RPS", true, func(r Record) *float64 { return fptr(r.RPS) }, fnum},
	{"mbps", "MB/s", true, func(r Record) *float64 { return fptr(r.MBps) }, fnum},
	{"p50", "p50 ms", false, func(r Record) *float64 { return fptr(r.P50ms) }, fnum},
	{"p99", "p99 ms", false, func(r Record) *float64 { return fptr(r.P99ms) }, fnum},
	{"max", "max ms", false, func(r Record) *float64 { return fptr(r.MaxMs) }, fnum},
	{"cpu", "CPU µs/RPC", false, func(r Record) *float64 { return r.CPUusPerRPC }, fnum},
	{"rss", "peak RSS MiB", false, func(r Record) *float64 { return r.PeakRSSMiB }, fnum},
}

func metricByKey(k string) metric {
	for _, m := range metrics {
		if m.key == k {
			return m
		}
	}
	panic(k)
}

type agg struct {
	med, min, max float64
	n             int
}

func aggregate(vals []float64) agg {
	if len(vals) == 0 {
		return agg{}
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return agg{med: med, min: s[0], max: s[len(s)-1], n: len(s)}
}

func (r *Report) records(w, b string) []Record {
	var out []Record
	for _, rec := range r.Records {
		if rec.Workload == w && rec.Balancer == b {
			out = append(out, rec)
		}
	}
	return out
}

func (r *Report) values(w, b string, m metric) []float64 {
	var out []float64
	for _, rec := range r.records(w, b) {
		if rec.Failed != "" {
			continue
		}
		if v := m.get(rec); v != nil {
			out = append(out, *v)
		}
	}
	return out
}

func (r *Report) peers() []string {
	var out []string
	for _, b := range r.Order {
		if b != "direct" && b != "l7lb" {
			out = append(out, b)
		}
	}
	return out
}

// ratio is l7lb's value over the best peer's, per run, then the median over
// runs; best names the peer that was best most often.
func (r *Report) ratio(w string, m metric) (med float64, best string, ok bool) {
	var ratios []float64
	wins := map[string]int{}
	for run := 1; run <= r.Cfg.Repeat; run++ {
		var l7 *float64
		var bestV *float64
		var bestName string
		for _, rec := range r.Records {
			if rec.Workload != w || rec.Run != run || rec.Failed != "" || rec.Ops == 0 {
				continue
			}
			v := m.get(rec)
			if v == nil {
				continue
			}
			switch rec.Balancer {
			case "direct":
			case "l7lb":
				l7 = v
			default:
				if bestV == nil || (m.higher && *v > *bestV) || (!m.higher && *v < *bestV) {
					bestV, bestName = v, rec.Balancer
				}
			}
		}
		if l7 != nil && bestV != nil && *bestV > 0 {
			ratios = append(ratios, *l7 / *bestV)
			wins[bestName]++
		}
	}
	if len(ratios) == 0 {
		return 0, "", false
	}
	n := 0
	for k, v := range wins {
		if v > n || (v == n && k < best) {
			best, n = k, v
		}
	}
	return aggregate(ratios).med, best, true
}

func (r *Report) table(w Workload) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#### %s: %s\n\n", w.Name, w.Desc)
	b.WriteString("| balancer |")
	for _, m := range metrics {
		b.WriteString(" " + m.title + " |")
	}
	b.WriteString(" split over 3 backends | errors |\n|---|")
	for range metrics {
		b.WriteString("---|")
	}
	b.WriteString("---|---|\n")
	for _, bal := range r.Order {
		recs := r.records(w.Name, bal)
		fmt.Fprintf(&b, "| %s |", bal)
		var failed []string
		for _, rec := range recs {
			if rec.Failed != "" {
				failed = append(failed, fmt.Sprintf("run %d: %s", rec.Run, firstLine(rec.Failed)))
			}
		}
		for _, m := range metrics {
			vals := r.values(w.Name, bal, m)
			if len(vals) == 0 {
				b.WriteString(" — |")
				continue
			}
			a := aggregate(vals)
			if a.n > 1 {
				fmt.Fprintf(&b, " %s (%s–%s) |", m.format(a.med), m.format(a.min), m.format(a.max))
			} else {
				fmt.Fprintf(&b, " %s |", m.format(a.med))
			}
		}
		// split: the shares summed over the runs, and the worst run's deviation
		var sum []int64
		worst := -1.0
		errs := map[string]int64{}
		for _, rec := range recs {
			if rec.Failed != "" {
				continue
			}
			if sum == nil {
				sum = make([]int64, len(rec.Split))
			}
			for i := range rec.Split {
				if i < len(sum) {
					sum[i] += rec.Split[i]
				}
			}
			if rec.SplitDevPct != nil && *rec.SplitDevPct > worst {
				worst = *rec.SplitDevPct
			}
			for k, v := range rec.Errors {
				errs[k] += v
			}
		}
		var tot int64
		for _, c := range sum {
			tot += c
		}
		switch {
		case bal == "direct":
			b.WriteString(" one backend |")
		case tot == 0:
			b.WriteString(" — |")
		default:
			var parts []string
			for _, c := range sum {
				parts = append(parts, fmt.Sprintf("%.1f", float64(c)*100/float64(tot)))
			}
			fmt.Fprintf(&b, " %s %% (worst run ±%.1f %%) |", strings.Join(parts, " / "), worst)
		}
		if len(errs) == 0 {
			b.WriteString(" 0")
		} else {
			var parts []string
			for k, v := range errs {
				parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
			}
			sort.Strings(parts)
			b.WriteString(" " + strings.Join(parts, ", "))
		}
		if len(failed) > 0 {
			b.WriteString("; FAILED " + strings.Join(failed, "; "))
		}
		b.WriteString(" |\n")
	}
	if len(r.peers()) > 0 {
		b.WriteString("| **l7lb / best peer** |")
		for _, m := range metrics {
			if m.key == "max" {
				b.WriteString(" |")
				continue
			}
			if v, best, ok := r.ratio(w.Name, m); ok {
				fmt.Fprintf(&b, " %.2f× %s |", v, best)
			} else {
				b.WriteString(" — |")
			}
		}
		b.WriteString(" | |\n")
	}
	return b.String()
}

// Check is one line of the targets check.
type Check struct {
	Result string // PASS, FAIL, SKIP
	Text   string
}

func checkTargets(r *Report, ws []Workload) ([]Check, bool) {
	var out []Check
	add := func(res, format string, args ...any) {
		out = append(out, Check{res, fmt.Sprintf(format, args...)})
	}
	has := map[string]bool{}
	for _, w := range ws {
		has[w.Name] = true
	}
	ratioCheck := func(w, key string, want float64, atLeast bool, what string) {
		if !has[w] {
			return
		}
		m := metricByKey(key)
		v, best, ok := r.ratio(w, m)
		if !ok {
			add("SKIP", "%s: %s — no peer measured", w, what)
			return
		}
		l7 := aggregate(r.values(w, "l7lb", m)).med
		bv := aggregate(r.values(w, best, m)).med
		pass := v <= want
		op := "≤"
		if atLeast {
			pass, op = v >= want, "≥"
		}
		res := "FAIL"
		if pass {
			res = "PASS"
		}
		add(res, "%s: %s: l7lb / best peer of the same run %.2f× (target %s %.2f×; medians over runs: l7lb %s, %s %s)", w, what, v, op, want, m.format(l7), best, m.format(bv))
	}
	for _, w := range []string{"a", "b"} {
		ratioCheck(w, "cpu", 0.8, false, "CPU µs/RPC")
		ratioCheck(w, "rps", 1.0, true, "RPS")
		ratioCheck(w, "p99", 1.0, false, "p99 latency ms")
	}
	ratioCheck("c", "mbps", 1.2, true, "MB/s")
	ratioCheck("d", "rps", 0.9, true, "RPS")
	if has["e"] {
		var vals []float64
		for _, rec := range r.records("e", "l7lb") {
			// a peak counts only when 64 MiB messages did get through
			if rec.Failed == "" && rec.Ops > 0 && rec.PeakRSSMiB != nil {
				vals = append(vals, *rec.PeakRSSMiB)
			}
		}
		if len(vals) == 0 {
			add("FAIL", "e: peak RSS with 1 GiB in flight: no run completed a 64 MiB RPC through l7lb")
		} else {
			a := aggregate(vals)
			res := "PASS"
			if a.max > 256 {
				res = "FAIL"
			}
			add(res, "e: peak RSS with 1 GiB in flight: l7lb %.0f MiB at most over %d runs (target ≤ 256 MiB)", a.max, a.n)
		}
	}
	if has["f"] {
		recs := r.records("f", "l7lb")
		ok := len(recs) > 0
		var rps []float64
		for _, rec := range recs {
			if rec.Failed != "" || rec.Ops == 0 || rec.ErrorsTotal > 0 {
				ok = false
			}
			rps = append(rps, rec.RPS)
		}
		res := "FAIL"
		if ok {
			res = "PASS"
		}
		add(res, "f: bidirectional ping-pong works through l7lb in every run (%s round trips/s)", fnum(aggregate(rps).med))
	}
	for _, w := range ws {
		recs := r.records(w.Name, "l7lb")
		worst, errs, bad := 0.0, int64(0), len(recs) == 0
		for _, rec := range recs {
			if rec.Failed != "" || rec.SplitDevPct == nil {
				bad = true
				continue
			}
			if *rec.SplitDevPct > worst {
				worst = *rec.SplitDevPct
			}
			errs += rec.ErrorsTotal
		}
		res := "PASS"
		if bad || worst > 5 || errs > 0 {
			res = "FAIL"
		}
		add(res, "%s: l7lb split within ±5 %% (worst run ±%.1f %%) and zero errors (%d)", w.Name, worst, errs)
	}
	all := true
	for _, c := range out {
		if c.Result == "FAIL" {
			all = false
		}
	}
	return out, all
}

func (r *Report) section(ws []Workload) string {
	var b strings.Builder
	m := r.Meta
	b.WriteString("<!-- generated by bench/ (go run ./bench); do not edit by hand -->\n")
	b.WriteString("### Benchmark: l7lb against nginx, HAProxy and Caddy\n\n")
	fmt.Fprintf(&b, "Measured %s with `%s`.\n\n", m.Date, commandLine(r.Cfg))
	fmt.Fprintf(&b, "- Machine: %d × %s, %.0f GiB, %s, kernel %s\n", m.NProc, m.CPU, m.MemGiB, m.OS, m.Kernel)
	fmt.Fprintf(&b, "- Go: %s\n", m.Go)
	fmt.Fprintf(&b, "- 1-minute load average: %.2f before the run, %.2f after (the machine is shared; figures move between runs)\n", m.LoadStart, m.LoadEnd)
	for _, bal := range r.Order {
		fmt.Fprintf(&b, "- %s: %s\n", bal, r.Versions[bal])
	}
	fmt.Fprintf(&b, `
Everything runs on 127.0.0.1: one backend process with 3 h2c gRPC listeners (raw-bytes codec, any
method, reply size from metadata), the balancer under test (its own process, a fresh one for every
measurement) terminating TLS for %s with a private CA and balancing round robin over h2c
to the 3 listeners, and a grpc-go load generator. Each measurement: %v warm-up, then a %v window;
%d run(s) per workload × balancer, interleaved; cells are medians with (min–max) over the runs.
CPU µs/RPC is utime+stime of all the balancer's processes (/proc/PID/stat) over the window divided
by the RPCs completed in it; peak RSS is the highest sum of VmRSS over its processes, sampled every
20 ms. The split counts RPCs started on each backend listener in the window (deviation allows ±1
RPC for the window's edges). "direct" is the client talking h2c to one backend listener, the
baseline. The ratio row is l7lb over the best peer of the same run (median over runs).
`, serverName, r.Cfg.Warmup, r.Cfg.Duration, r.Cfg.Repeat)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	b.WriteString("\n")
	for _, w := range ws {
		b.WriteString(r.table(w))
		b.WriteString("\n")
	}
	b.WriteString("#### Targets of issue 3\n\n```\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%s %s\n", c.Result, c.Text)
	}
	b.WriteString("```\n")
	return b.String()
}

func writeReports(r *Report, ws []Workload) error {
	sec := r.section(ws)
	fmt.Println()
	fmt.Print(sec)
	if err := os.WriteFile(filepath.Join(r.Cfg.Out, "README-section.md"), []byte(sec), 0o644); err != nil {
		return err
	}
	// results.md: the same, plus every run's row with the secondary figures.
	var b bytes.Buffer
	b.WriteString(sec)
	b.WriteString("\n#### Every run\n\n| run | workload | balancer | RPS | MB/s | p50 ms | p99 ms | max ms | balancer CPU µs/RPC | balancer cores | peak RSS MiB | VmHWM MiB | procs | backend CPU µs/RPC | client CPU µs/RPC | split | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	opt := func(p *float64) string {
		if p == nil {
			return "—"
		}
		return fnum(*p)
	}
	for _, rec := range r.Records {
		if rec.Failed != "" {
			fmt.Fprintf(&b, "| %d | %s | %s | FAILED: %s |||||||||||||\n", rec.Run, rec.Workload, rec.Balancer, firstLine(rec.Failed))
			continue
		}
		errs := fmt.Sprint(rec.ErrorsTotal)
		if rec.FirstError != "" {
			errs += " (" + strings.ReplaceAll(firstLine(rec.FirstError), "|", "/") + ")"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %v | %s |\n",
			rec.Run, rec.Workload, rec.Balancer, fnum(rec.RPS), fnum(rec.MBps), fnum(rec.P50ms), fnum(rec.P99ms), fnum(rec.MaxMs),
			opt(rec.CPUusPerRPC), opt(rec.CPUCores), opt(rec.PeakRSSMiB), opt(rec.HWMMiB), rec.Procs, fnum(rec.BackendCPU), fnum(rec.ClientCPU), rec.Split, errs)
	}
	return os.WriteFile(filepath.Join(r.Cfg.Out, "results.md"), b.Bytes(), 0o644)
}
