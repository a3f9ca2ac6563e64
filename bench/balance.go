package main

// The balancing scenarios (go run ./bench -balance ...): l7lb with each of
// its algorithms, each as its own row, against HAProxy "balance leastconn"
// and nginx "least_conn", on three backends that are three processes (one
// h2c listener each), so that one can be made slow or stopped.
//
//   - equal: three equal replicas; a warm-up, then the measured window:
//     RPS, latency, the balancer's CPU per RPC and the split.
//   - slow: one replica holds every reply for SlowDelay; from the first
//     RPC on: RPS, latency and the share of RPCs the slow replica got,
//     overall and after SlowSettle.
//   - hung: one replica is stopped (SIGSTOP) HungStopAt into the load and
//     continued (SIGCONT) once the load is over; every RPC has a deadline
//     of HungDeadline: failed RPCs, RPS before and during the hang, and
//     how long the hung replica kept getting new RPCs.
//
// All scenarios: one TLS connection, InFlight RPCs in flight back to back,
// ReqSize requests and ReplySize replies (workload a's shape). Every
// measurement starts fresh backends and a fresh balancer.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// balanceParams are the scenarios' sizes and times (tests shrink them).
type balanceParams struct {
	InFlight  int `json:"in_flight"`
	ReqSize   int `json:"req_bytes"`
	ReplySize int `json:"reply_bytes"`

	EqualWarmup   time.Duration `json:"equal_warmup"`
	EqualDuration time.Duration `json:"equal_window"`
	// EqualRate paces the equal scenario at this many RPCs per second in
	// all (0, the default: back to back). Tried as a way to compare CPU
	// per RPC at one RPS: at 5000 RPC/s l7lb's CPU per RPC rose from
	// about 22 µs to 55-74 µs (fewer RPCs share each write and wake-up)
	// and varied more between identical runs (l7lb-rr against itself
	// 1.35x, against 1.10x back to back), so it stays an option.
	EqualRate float64 `json:"equal_rate_rps,omitempty"`

	SlowDuration time.Duration `json:"slow_duration"` // from the first RPC
	SlowSettle   time.Duration `json:"slow_settle"`   // the share is also reported after this
	SlowDelay    time.Duration `json:"slow_delay"`    // the slow replica's extra time per reply

	HungDuration time.Duration `json:"hung_duration"` // load, from the first RPC
	HungStopAt   time.Duration `json:"hung_stop_at"`  // SIGSTOP of one replica
	HungDeadline time.Duration `json:"hung_deadline"` // per RPC

	CallDeadline time.Duration `json:"call_deadline"` // per RPC in equal and slow
	Sample       time.Duration `json:"sample_every"`  // backend counters, for the timeline
	HealthWait   time.Duration `json:"health_wait"`   // at most, for l7lb's targets to turn healthy
}

var defaultBalanceParams = balanceParams{
	InFlight: 32, ReqSize: 3 << 10, ReplySize: 1 << 10,
	EqualWarmup: time.Second, EqualDuration: 5 * time.Second,
	SlowDuration: 6 * time.Second, SlowSettle: time.Second, SlowDelay: 20 * time.Millisecond,
	HungDuration: 12 * time.Second, HungStopAt: 2 * time.Second, HungDeadline: 2 * time.Second,
	CallDeadline: 10 * time.Second, Sample: 250 * time.Millisecond, HealthWait: 15 * time.Second,
}

// The replica that is slow (slow) or stopped (hung): the second of three.
const oddBackend = 1

var balanceScenarios = []string{"equal", "slow", "hung"}

// balancerVariant is one row of the tables: a balancer with one algorithm.
type balancerVariant struct {
	Name        string   // row name
	Kind        string   // what startBalancer starts: l7lb, haproxy, nginx
	Short       string   // -algorithms name (l7lb)
	Algorithm   string   // as the tables show it
	Annotations []string // l7lb: Ingress annotation lines
	PeerBalance string   // peers: the algorithm directive
}

// l7lbHealthAnnotations: checks every 2 s (the shortest l7lb takes with
// its 1 s minimum timeout), so the targets are healthy two checks after
// l7lb starts. Ejection (passive health, a hung target) only takes
// healthy targets out; targets still in "initial" are served fail-open.
var l7lbHealthAnnotations = []string{
	`alb.ingress.kubernetes.io/healthcheck-interval-seconds: "2"`,
	`alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "1"`,
}

var l7lbVariants = []balancerVariant{
	{Name: "l7lb-rr", Kind: "l7lb", Short: "rr", Algorithm: "round_robin",
		Annotations: []string{`alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=round_robin`}},
	{Name: "l7lb-lor", Kind: "l7lb", Short: "lor", Algorithm: "least_outstanding_requests",
		Annotations: []string{`alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=least_outstanding_requests`}},
	{Name: "l7lb-wr", Kind: "l7lb", Short: "wr", Algorithm: "weighted_random + anomaly_mitigation",
		Annotations: []string{`alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=weighted_random,load_balancing.algorithm.anomaly_mitigation=on`}},
	{Name: "l7lb-ewma", Kind: "l7lb", Short: "ewma", Algorithm: "peak_ewma",
		Annotations: []string{`l7lb.io/load-balancing-algorithm: peak_ewma`}},
}

var peerVariants = map[string]balancerVariant{
	"haproxy": {Name: "haproxy-leastconn", Kind: "haproxy", Algorithm: "balance leastconn", PeerBalance: "leastconn"},
	"nginx":   {Name: "nginx-least_conn", Kind: "nginx", Algorithm: "least_conn", PeerBalance: "least_conn"},
}

// TimePoint is one sample of the backends' counters.
type TimePoint struct {
	T      float64 `json:"t_s"`    // since the load started
	Counts []int64 `json:"counts"` // RPCs started per backend so far; -1: not asked (stopped) or no answer
}

// BalanceRecord is one scenario × balancer × run; one JSON line each.
type BalanceRecord struct {
	Time      string `json:"time"`
	Run       int    `json:"run"`
	Scenario  string `json:"scenario"`
	Balancer  string `json:"balancer"`
	Algorithm string `json:"algorithm"`

	WindowS float64 `json:"window_s"` // the measured window: RPS and latencies
	Calls   int64   `json:"calls"`    // RPCs started, whole load
	OK      int64   `json:"ok"`       // completed in the window
	RPS     float64 `json:"rps"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`

	CPUusPerRPC *float64 `json:"balancer_cpu_us_per_rpc,omitempty"` // utime+stime of the balancer's processes in the window / OK
	CPUCores    *float64 `json:"balancer_cpu_cores,omitempty"`

	Split       []int64  `json:"split"` // RPCs started per backend in the window (backend counters)
	SplitDevPct *float64 `json:"split_max_dev_pct,omitempty"`

	// slow
	OddBackend     int      `json:"odd_backend"` // index of the slow (slow) or stopped (hung) backend
	SlowSharePct   *float64 `json:"slow_share_pct,omitempty"`
	SplitAfter     []int64  `json:"split_after_settle,omitempty"`
	SlowShareAfter *float64 `json:"slow_share_after_settle_pct,omitempty"`
	RPSAfterSettle *float64 `json:"rps_after_settle,omitempty"`
	P99AfterSettle *float64 `json:"p99_ms_after_settle,omitempty"`

	// hung
	RPSBefore      *float64 `json:"rps_before,omitempty"` // OK completions before the SIGSTOP / its time
	RPSDuring      *float64 `json:"rps_during,omitempty"` // OK completions from SIGSTOP to the load's end / that time
	RPSRatio       *float64 `json:"rps_during_over_before,omitempty"`
	StopAtS        float64  `json:"stop_at_s,omitempty"`
	LastFailStartS *float64 `json:"last_failed_call_start_after_stop_s,omitempty"`       // client side: the last failing RPC started this long after SIGSTOP
	FailedAfter1s  *int64   `json:"failed_calls_started_1s_after_stop,omitempty"`        // client side
	LastStampS     *float64 `json:"hung_backend_last_call_start_after_stop_s,omitempty"` // backend side (read after SIGCONT)
	HungGot        *int64   `json:"hung_backend_calls_during_hang,omitempty"`            // backend side: RPCs it found once continued whose client start was after the SIGSTOP
	HungStarts     []int64  `json:"hung_backend_calls_by_start,omitempty"`               // those by client start time, per Sample from the SIGSTOP

	Errors      map[string]int64 `json:"errors"` // by gRPC code, whole load (incl. warm-up and calls ending after it)
	ErrorsTotal int64            `json:"errors_total"`
	FirstError  string           `json:"first_error,omitempty"`

	ClientRPS []float64   `json:"client_ok_per_s"`                // OK completions per second of the load
	Timeline  []TimePoint `json:"timeline,omitempty"`             // backend counters every Sample
	Targets   []string    `json:"l7lb_targets,omitempty"`         // l7lb: target states at the load's end (admin API)
	HealthyS  *float64    `json:"l7lb_healthy_after_s,omitempty"` // l7lb: all targets healthy this long after start
	Notes     []string    `json:"notes,omitempty"`
	TookS     float64     `json:"took_s"` // the whole measurement: starts, load, stops
	Failed    string      `json:"failed,omitempty"`
}

// callRec is one RPC as the client saw it, times from the load's start.
type callRec struct {
	start, end time.Duration
	code       codes.Code
}

// balanceLoad is a running load: InFlight workers on one connection,
// starting RPCs until stopAt.
type balanceLoad struct {
	t0      time.Time
	recs    [][]callRec
	firstMu sync.Mutex
	first   string
	wg      sync.WaitGroup
	cc      *grpc.ClientConn
}

// atStart runs once the connection is up, just before the clock starts.
// rate > 0 paces the workers to that many RPCs per second in all.
func startBalanceLoad(t Target, p balanceParams, deadline, dur time.Duration, rate float64, atStart func()) (*balanceLoad, error) {
	ccs, err := dialTargets(t, 1)
	if err != nil {
		return nil, err
	}
	cc := ccs[0]
	req := make([]byte, p.ReqSize)
	base := metadata.AppendToOutgoingContext(context.Background(), mdMode, "unary", mdReplySize, strconv.Itoa(p.ReplySize))
	// One RPC first, so that the clock starts on an established connection.
	{
		ctx, cancel := context.WithTimeout(base, 10*time.Second)
		var out frame
		err := cc.Invoke(ctx, methodUnary, &frame{data: req}, &out)
		cancel()
		if err != nil {
			cc.Close()
			return nil, fmt.Errorf("first RPC: %w", err)
		}
	}
	if atStart != nil {
		atStart()
	}
	l := &balanceLoad{t0: time.Now(), recs: make([][]callRec, p.InFlight), cc: cc}
	stopAt := l.t0.Add(dur)
	var tokens chan struct{}
	if rate > 0 {
		// One token per RPC, released every millisecond in proportion
		// to the time passed; a worker takes one before each RPC. The
		// buffer holds at most one token per worker, so a stall is not
		// followed by a burst.
		tokens = make(chan struct{}, p.InFlight)
		go func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			released := 0.0
			for now := range tick.C {
				if !now.Before(stopAt) {
					return
				}
				due := now.Sub(l.t0).Seconds() * rate
				for ; released < due; released++ {
					select {
					case tokens <- struct{}{}:
					default: // every worker is busy or has one: drop
					}
				}
			}
		}()
	}
	for i := 0; i < p.InFlight; i++ {
		l.wg.Add(1)
		go func(i int) {
			defer l.wg.Done()
			recs := make([]callRec, 0, 4096)
			for n := 0; n < maxOpsPerWorker; n++ {
				if tokens != nil {
					select {
					case <-tokens:
					case <-time.After(time.Until(stopAt)):
					}
				}
				t0 := time.Now()
				if !t0.Before(stopAt) {
					break
				}
				ctx, cancel := context.WithTimeout(base, deadline)
				ctx = metadata.AppendToOutgoingContext(ctx, mdStamp, strconv.FormatInt(t0.UnixNano(), 10))
				var out frame
				err := cc.Invoke(ctx, methodUnary, &frame{data: req}, &out)
				t1 := time.Now()
				cancel()
				if err == nil && out.n != p.ReplySize {
					err = status.Errorf(codes.DataLoss, "reply of %d bytes, want %d", out.n, p.ReplySize)
				}
				code := status.Code(err)
				recs = append(recs, callRec{start: t0.Sub(l.t0), end: t1.Sub(l.t0), code: code})
				if err != nil {
					l.firstMu.Lock()
					if l.first == "" {
						l.first = err.Error()
					}
					l.firstMu.Unlock()
					if code != codes.DeadlineExceeded && code != codes.Canceled {
						time.Sleep(10 * time.Millisecond) // do not spin on a refusing balancer
					}
				}
			}
			l.recs[i] = recs
		}(i)
	}
	return l, nil
}

// wait returns once every worker stopped (each call ends by its deadline),
// or after limit.
func (l *balanceLoad) wait(limit time.Duration) error {
	defer l.cc.Close()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(limit):
		return fmt.Errorf("workers did not stop within %v of the load's end", limit)
	}
}

func (l *balanceLoad) all() []callRec {
	var out []callRec
	for _, r := range l.recs {
		out = append(out, r...)
	}
	return out
}

// okIn returns the latencies (sorted) of the RPCs that succeeded with
// their end in [from, to).
func okIn(recs []callRec, from, to time.Duration) []time.Duration {
	var lat []time.Duration
	for _, r := range recs {
		if r.code == codes.OK && r.end >= from && r.end < to {
			lat = append(lat, r.end-r.start)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

// backendSet is the three backend processes of one measurement.
type backendSet struct {
	procs   []*backendProc
	stats   []*backendStatsClient
	addrs   []string
	mu      sync.Mutex
	stopped []bool
}

func startBackendSet(dir string, seq int, delays []time.Duration) (*backendSet, error) {
	bs := &backendSet{stopped: make([]bool, len(delays))}
	for i, d := range delays {
		args := []string{"1", "-health"}
		if d > 0 {
			args = append(args, "-delay", d.String())
		}
		p, err := startBackendArgs(dir, fmt.Sprintf("backend-%03d-%d.log", seq, i), args...)
		if err != nil {
			bs.Stop()
			return nil, err
		}
		bs.procs = append(bs.procs, p)
		bs.addrs = append(bs.addrs, p.Addrs[0])
		sc, err := newBackendStatsClient(p.Addrs[0])
		if err != nil {
			bs.Stop()
			return nil, err
		}
		bs.stats = append(bs.stats, sc)
	}
	return bs, nil
}

// signal sends SIGSTOP or SIGCONT to backend i.
func (bs *backendSet) signal(i int, sig syscall.Signal) error {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if err := syscall.Kill(bs.procs[i].Pid, sig); err != nil {
		return err
	}
	bs.stopped[i] = sig == syscall.SIGSTOP
	return nil
}

// counts asks every running backend for its count (-1 for a stopped one
// or one that did not answer within timeout).
func (bs *backendSet) counts(timeout time.Duration) []int64 {
	out := make([]int64, len(bs.procs))
	for i, sc := range bs.stats {
		bs.mu.Lock()
		stopped := bs.stopped[i]
		bs.mu.Unlock()
		out[i] = -1
		if stopped {
			continue
		}
		if st, err := sc.stats(timeout); err == nil && len(st.Counts) == 1 {
			out[i] = st.Counts[0]
		}
	}
	return out
}

func (bs *backendSet) Stop() {
	for i, p := range bs.procs {
		if bs.stopped[i] {
			_ = syscall.Kill(p.Pid, syscall.SIGCONT)
		}
	}
	for _, sc := range bs.stats {
		sc.Close()
	}
	for _, p := range bs.procs {
		p.Stop()
	}
}

// schedule runs fns at their times after t0, in order, from the calling
// goroutine.
type event struct {
	at time.Duration
	fn func()
}

func runEvents(t0 time.Time, evs []event) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	for _, ev := range evs {
		time.Sleep(time.Until(t0.Add(ev.at)))
		ev.fn()
	}
}

// l7lbTargets reads the target group's targets from l7lb's admin API.
func l7lbTargets(admin string) ([]string, bool, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + admin + "/api/v1/targetgroups")
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	var groups []struct {
		Name    string
		Targets []struct {
			Address, State, Reason string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&groups); err != nil {
		return nil, false, err
	}
	var out []string
	healthy := 0
	for _, g := range groups {
		for _, t := range g.Targets {
			s := t.Address + " " + t.State
			if t.Reason != "" {
				s += " (" + t.Reason + ")"
			}
			out = append(out, s)
			if t.State == "healthy" {
				healthy++
			}
		}
	}
	return out, len(out) > 0 && healthy == len(out), nil
}

func subCounts(a, b []int64) []int64 {
	if a == nil || b == nil || len(a) != len(b) {
		return nil
	}
	out := make([]int64, len(a))
	for i := range a {
		if a[i] < 0 || b[i] < 0 {
			return nil
		}
		out[i] = a[i] - b[i]
	}
	return out
}

func sharePct(split []int64, i int) *float64 {
	var sum int64
	for _, c := range split {
		sum += c
	}
	if split == nil || sum == 0 {
		return nil
	}
	return fptr(float64(split[i]) / float64(sum) * 100)
}

// splitDev is the split's largest deviation from even, in %, the 1 RPC of
// the window's edges forgiven (as in the workloads).
func splitDev(split []int64) *float64 {
	var sum int64
	for _, c := range split {
		sum += c
	}
	if split == nil || sum == 0 {
		return nil
	}
	even := float64(sum) / float64(len(split))
	var dev float64
	for _, c := range split {
		if d := max(abs(float64(c)-even)-1, 0) / even * 100; d > dev {
			dev = d
		}
	}
	return fptr(dev)
}

// measureBalance starts fresh backends and a fresh balancer, runs one
// scenario through them and stops them.
func measureBalance(e *env, v balancerVariant, sc string, p balanceParams, runNo, seq int) BalanceRecord {
	rec := BalanceRecord{Time: time.Now().UTC().Format(time.RFC3339), Run: runNo, Scenario: sc, Balancer: v.Name,
		Algorithm: v.Algorithm, Errors: map[string]int64{}, OddBackend: -1}
	delays := make([]time.Duration, 3)
	if sc == "slow" {
		delays[oddBackend] = p.SlowDelay
	}
	bs, err := startBackendSet(e.Dir, seq, delays)
	if err != nil {
		rec.Failed = "backends: " + err.Error()
		return rec
	}
	defer bs.Stop()
	me := *e
	me.Backends = bs.addrs
	me.PeerBalance = v.PeerBalance
	var admin string
	if v.Kind == "l7lb" {
		me.Ingress = filepath.Join(e.Dir, fmt.Sprintf("ingress-%03d.yaml", seq))
		if err := e.writeIngress(me.Ingress, append(append([]string{}, l7lbHealthAnnotations...), v.Annotations...)); err != nil {
			rec.Failed = err.Error()
			return rec
		}
		port, err := freePort()
		if err != nil {
			rec.Failed = err.Error()
			return rec
		}
		admin = "127.0.0.1:" + strconv.Itoa(port)
		me.L7LBArgs = []string{"--admin", admin}
	}
	started := time.Now()
	bal, err := startBalancer(&me, v.Kind, seq)
	if err != nil {
		rec.Failed = err.Error()
		return rec
	}
	defer bal.Stop()
	if admin != "" {
		// Wait for the health checks to turn every target healthy.
		var last []string
		ok := false
		for i := 0; i < 1000 && time.Since(started) < p.HealthWait; i++ {
			var err error
			if last, ok, err = l7lbTargets(admin); err == nil && ok {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if ok {
			rec.HealthyS = fptr(time.Since(started).Seconds())
		} else {
			rec.Notes = append(rec.Notes, fmt.Sprintf("l7lb's targets not all healthy within %v: %s", p.HealthWait, strings.Join(last, "; ")))
		}
	}

	deadline, dur := p.CallDeadline, time.Duration(0)
	var winFrom, winTo time.Duration
	switch sc {
	case "equal":
		dur = p.EqualWarmup + p.EqualDuration
		winFrom, winTo = p.EqualWarmup, dur
	case "slow":
		dur = p.SlowDuration
		winFrom, winTo = 0, dur
	case "hung":
		dur, deadline = p.HungDuration, p.HungDeadline
		winFrom, winTo = 0, dur
		rec.OddBackend = oddBackend
		rec.StopAtS = p.HungStopAt.Seconds()
	}
	if sc == "slow" {
		rec.OddBackend = oddBackend
	}
	var (
		pids       []int
		cpu0, cpu1 procCounters
		edge       = map[string][]int64{}
		stoppedAt  time.Duration
		stopErr    error
		timeline   []TimePoint
		l          *balanceLoad
	)
	cpuNow := func(into *procCounters) {
		if bal.Pid != 0 {
			if pids == nil {
				pids = procTree(bal.Pid)
			}
			*into = treeCounters(pids)
		}
	}
	sample := func(timeout time.Duration) []int64 {
		c := bs.counts(timeout)
		t := 0.0
		if l != nil {
			t = time.Since(l.t0).Seconds()
		}
		timeline = append(timeline, TimePoint{T: t, Counts: c})
		return c
	}
	// The edges of the windows first: the sort is stable, so at equal
	// times they come before the timeline's samples.
	var evs []event
	edgeAt := func(name string, at time.Duration, cpu *procCounters) {
		evs = append(evs, event{at, func() {
			if cpu != nil {
				cpuNow(cpu)
			}
			edge[name] = sample(time.Second)
		}})
	}
	if winFrom > 0 {
		edgeAt("from", winFrom, &cpu0)
	}
	switch sc {
	case "slow":
		edgeAt("settle", p.SlowSettle, nil)
	case "hung":
		edgeAt("stop", p.HungStopAt, nil)
		evs = append(evs, event{p.HungStopAt, func() {
			// the time after the signal: an RPC started later cannot
			// have been answered
			stopErr = bs.signal(oddBackend, syscall.SIGSTOP)
			stoppedAt = time.Since(l.t0)
		}})
	}
	edgeAt("to", winTo, &cpu1)
	for at := p.Sample; at < dur && len(evs) < 10000; at += p.Sample {
		evs = append(evs, event{at, func() { sample(300 * time.Millisecond) }})
	}
	rate := 0.0
	if sc == "equal" {
		rate = p.EqualRate
	}
	l, err = startBalanceLoad(bal.target(&me), p, deadline, dur, rate, func() {
		if winFrom == 0 {
			// the window opens with the load
			cpuNow(&cpu0)
			edge["from"] = sample(time.Second)
		}
	})
	if err != nil {
		rec.Failed = err.Error()
		return rec
	}
	runEvents(l.t0, evs)
	loadEnd := time.Since(l.t0)
	waitErr := l.wait(deadline + 30*time.Second)
	if admin != "" {
		if ts, _, err := l7lbTargets(admin); err == nil {
			rec.Targets = ts
		}
	}
	var final *backendStats
	if sc == "hung" && stopErr == nil && stoppedAt > 0 {
		// Continue the stopped replica; what it finds in its sockets are the
		// RPCs sent to it while it was stopped.
		if err := bs.signal(oddBackend, syscall.SIGCONT); err != nil {
			rec.Notes = append(rec.Notes, "SIGCONT: "+err.Error())
		}
		var last int64 = -1
		since := l.t0.Add(stoppedAt).UnixNano()
		for i := 0; i < 20; i++ { // until its count stops moving, at most 2 s
			time.Sleep(100 * time.Millisecond)
			st, err := bs.stats[oddBackend].statsSince(time.Second, since)
			if err != nil || len(st.Counts) != 1 || len(st.Since) != 1 {
				continue
			}
			final = st
			if st.Counts[0] == last {
				break
			}
			last = st.Counts[0]
		}
	}
	if waitErr != nil {
		rec.Failed = waitErr.Error()
		return rec
	}
	if stopErr != nil {
		rec.Failed = "SIGSTOP: " + stopErr.Error()
		return rec
	}
	recs := l.all()
	rec.Calls = int64(len(recs))
	for _, r := range recs {
		if r.code != codes.OK {
			rec.Errors[r.code.String()]++
			rec.ErrorsTotal++
		}
	}
	rec.FirstError = l.first
	window := winTo - winFrom
	lat := okIn(recs, winFrom, winTo)
	rec.WindowS = window.Seconds()
	rec.OK = int64(len(lat))
	rec.RPS = float64(len(lat)) / window.Seconds()
	rec.P50ms, rec.P99ms, rec.MaxMs = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1)
	if bal.Pid != 0 && len(lat) > 0 {
		d := cpu1.sub(cpu0)
		cpu := d.User + d.Sys
		rec.CPUusPerRPC = fptr(float64(cpu) / float64(time.Microsecond) / float64(len(lat)))
		rec.CPUCores = fptr(cpu.Seconds() / window.Seconds())
	}
	rec.Split = subCounts(edge["to"], edge["from"])
	rec.SplitDevPct = splitDev(rec.Split)
	for s := 0; s < 1000 && time.Duration(s)*time.Second < loadEnd; s++ {
		from := time.Duration(s) * time.Second
		to := min(from+time.Second, dur)
		if to <= from {
			break
		}
		rec.ClientRPS = append(rec.ClientRPS, float64(len(okIn(recs, from, to)))/(to-from).Seconds())
	}
	rec.Timeline = timeline
	switch sc {
	case "slow":
		rec.SlowSharePct = sharePct(rec.Split, oddBackend)
		rec.SplitAfter = subCounts(edge["to"], edge["settle"])
		rec.SlowShareAfter = sharePct(rec.SplitAfter, oddBackend)
		after := okIn(recs, p.SlowSettle, winTo)
		rec.RPSAfterSettle = fptr(float64(len(after)) / (winTo - p.SlowSettle).Seconds())
		rec.P99AfterSettle = fptr(pct(after, 0.99))
	case "hung":
		rec.Split = subCounts(edge["stop"], edge["from"]) // before the stop; the stopped one is not asked after
		rec.SplitDevPct = nil
		before := okIn(recs, 0, stoppedAt)
		during := okIn(recs, stoppedAt, winTo)
		rec.RPSBefore = fptr(float64(len(before)) / stoppedAt.Seconds())
		rec.RPSDuring = fptr(float64(len(during)) / (winTo - stoppedAt).Seconds())
		if *rec.RPSBefore > 0 {
			rec.RPSRatio = fptr(*rec.RPSDuring / *rec.RPSBefore)
		}
		var lastFail time.Duration = -1
		var after1 int64
		for _, r := range recs {
			if r.code != codes.OK && r.start >= stoppedAt {
				if r.start > lastFail {
					lastFail = r.start
				}
				if r.start >= stoppedAt+time.Second {
					after1++
				}
			}
		}
		if lastFail >= 0 {
			rec.LastFailStartS = fptr((lastFail - stoppedAt).Seconds())
		}
		rec.FailedAfter1s = &after1
		if final != nil {
			// The RPCs the stopped backend found in its sockets once
			// continued, by their client start time after the SIGSTOP.
			stopWall := l.t0.Add(stoppedAt).UnixNano()
			got := int64(len(final.Since[0]))
			rec.HungGot = &got
			bins := int((winTo-stoppedAt)/p.Sample) + 1
			rec.HungStarts = make([]int64, bins)
			var latest int64 = -1
			for _, ns := range final.Since[0] {
				latest = max(latest, ns)
				if b := int((ns - stopWall) / int64(p.Sample)); b >= 0 && b < bins {
					rec.HungStarts[b]++
				}
			}
			if latest >= 0 {
				rec.LastStampS = fptr(float64(latest-stopWall) / 1e9)
			}
			if got >= stampRing {
				rec.Notes = append(rec.Notes, fmt.Sprintf("the stopped backend keeps the last %d start times only", stampRing))
			}
		} else {
			rec.Notes = append(rec.Notes, "the stopped replica's counters could not be read after SIGCONT")
		}
	}
	return rec
}

// balanceReport is what a -balance run produced.
type balanceReport struct {
	Records  []BalanceRecord
	Order    []string
	Algos    map[string]string
	Versions map[string]string
	Notes    []string
	Meta     Meta
	Params   balanceParams
	Command  string
	Checks   []Check
	AllPass  bool
}

// balanceVariants is the rows -balance measures: the l7lb algorithms
// asked for, then the peers that support it.
func balanceVariants(cfg config) ([]balancerVariant, []string, error) {
	var out []balancerVariant
	var notes []string
	algos := cfg.BalanceAlgos
	if len(algos) == 0 || (len(algos) == 1 && algos[0] == "all") {
		algos = nil
		for _, v := range l7lbVariants {
			algos = append(algos, v.Short)
		}
	}
	for _, a := range algos {
		found := false
		for _, v := range l7lbVariants {
			if v.Short == a {
				out = append(out, v)
				found = true
			}
		}
		if !found {
			return nil, nil, fmt.Errorf("unknown l7lb algorithm %q (rr, lor, wr, ewma)", a)
		}
	}
	for _, p := range cfg.Peers {
		v, ok := peerVariants[p]
		if !ok {
			notes = append(notes, fmt.Sprintf("%s: not part of -balance (only haproxy and nginx have a least-connections algorithm here); skipped", p))
			continue
		}
		out = append(out, v)
	}
	return out, notes, nil
}

func runBalance(cfg config, e *env, variants []balancerVariant, versions map[string]string, notes []string, meta Meta) (*balanceReport, error) {
	var scs []string
	for _, name := range cfg.Balance {
		found := false
		for _, s := range balanceScenarios {
			found = found || s == name
		}
		if !found {
			return nil, fmt.Errorf("unknown balance scenario %q (equal, slow, hung)", name)
		}
		scs = append(scs, name)
	}
	p := defaultBalanceParams
	if cfg.balanceParams != nil {
		p = *cfg.balanceParams
	}
	rep := &balanceReport{Versions: versions, Notes: notes, Meta: meta, Params: p, Command: balanceCommand(cfg), Algos: map[string]string{}}
	for _, v := range variants {
		rep.Order = append(rep.Order, v.Name)
		rep.Algos[v.Name] = v.Algorithm
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	jf, err := os.Create(filepath.Join(cfg.Out, "balance.jsonl"))
	if err != nil {
		return nil, err
	}
	defer jf.Close()
	enc := json.NewEncoder(jf)
	total := cfg.Repeat * len(scs) * len(variants)
	fmt.Printf("%d balance measurements (%d runs × %d scenarios × %d balancers: %v)\n", total, cfg.Repeat, len(scs), len(variants), rep.Order)
	seq := 0
	for r := 1; r <= cfg.Repeat; r++ {
		for _, sc := range scs {
			for _, v := range variants {
				seq++
				t0 := time.Now()
				rec := measureBalance(e, v, sc, p, r, seq)
				rec.TookS = time.Since(t0).Seconds()
				rep.Records = append(rep.Records, rec)
				if err := enc.Encode(rec); err != nil {
					return nil, err
				}
				fmt.Printf("[%d/%d] run %d %s %s: %s\n", seq, total, r, sc, v.Name, balanceLine(rec))
			}
		}
	}
	rep.Meta.LoadEnd = loadAvg()
	rep.Checks, rep.AllPass = checkBalance(rep, scs, cfg.Repeat)
	md := rep.markdown(scs)
	fmt.Println()
	fmt.Print(md)
	return rep, os.WriteFile(filepath.Join(cfg.Out, "balance.md"), []byte(md), 0o644)
}

func balanceCommand(cfg config) string {
	var b strings.Builder
	b.WriteString("go run ./bench -balance " + strings.Join(cfg.Balance, ","))
	if len(cfg.BalanceAlgos) > 0 {
		b.WriteString(" -algorithms " + strings.Join(cfg.BalanceAlgos, ","))
	}
	if len(cfg.Peers) > 0 {
		b.WriteString(" -peers " + strings.Join(cfg.Peers, ","))
	}
	if cfg.Repeat != 1 {
		fmt.Fprintf(&b, " -repeat %d", cfg.Repeat)
	}
	if cfg.L7LBBin != "" {
		b.WriteString(" -l7lb-bin " + cfg.L7LBBin)
	}
	if r := defaultBalanceParams.EqualRate; r != 0 && slices.Contains(cfg.Balance, "equal") {
		fmt.Fprintf(&b, " -equal-rate %g", r)
	}
	if cfg.Out != "" {
		b.WriteString(" -out " + cfg.Out)
	}
	return b.String()
}

func optf(v *float64, format string) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf(format, *v)
}

func splitString(s []int64) string {
	if s == nil {
		return "—"
	}
	parts := make([]string, len(s))
	for i, c := range s {
		parts[i] = strconv.FormatInt(c, 10)
	}
	return strings.Join(parts, " / ")
}

func balanceLine(r BalanceRecord) string {
	if r.Failed != "" {
		return "FAILED: " + firstLine(r.Failed)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rps=%.0f p50=%.2fms p99=%.2fms cpu=%sµs/rpc split=%s errors={%s}",
		r.RPS, r.P50ms, r.P99ms, optf(r.CPUusPerRPC, "%.1f"), splitString(r.Split), codesString(r.Errors))
	switch r.Scenario {
	case "equal":
		fmt.Fprintf(&b, " dev=%s%%", optf(r.SplitDevPct, "%.1f"))
	case "slow":
		fmt.Fprintf(&b, " slow=%s%% after=%s%%", optf(r.SlowSharePct, "%.2f"), optf(r.SlowShareAfter, "%.2f"))
	case "hung":
		fmt.Fprintf(&b, " before=%s during=%s ratio=%s last-fail=+%ss last-to-hung=+%ss",
			optf(r.RPSBefore, "%.0f"), optf(r.RPSDuring, "%.0f"), optf(r.RPSRatio, "%.2f"), optf(r.LastFailStartS, "%.2f"), optf(r.LastStampS, "%.2f"))
	}
	fmt.Fprintf(&b, " (healthy after %ss, took %.1fs)", optf(r.HealthyS, "%.1f"), r.TookS)
	for _, n := range r.Notes {
		b.WriteString("; note: " + n)
	}
	return b.String()
}

// find returns the record of balancer b in scenario sc and run run.
func (r *balanceReport) find(sc, b string, run int) *BalanceRecord {
	for i := range r.Records {
		x := &r.Records[i]
		if x.Scenario == sc && x.Balancer == b && x.Run == run && x.Failed == "" {
			return x
		}
	}
	return nil
}

// checkBalance computes issue 11's targets from the run's records, one
// set of lines per run.
func checkBalance(r *balanceReport, scs []string, runs int) ([]Check, bool) {
	var out []Check
	add := func(pass bool, format string, args ...any) {
		res := "FAIL"
		if pass {
			res = "PASS"
		}
		out = append(out, Check{res, fmt.Sprintf(format, args...)})
	}
	skip := func(format string, args ...any) { out = append(out, Check{"SKIP", fmt.Sprintf(format, args...)}) }
	has := map[string]bool{}
	for _, s := range scs {
		has[s] = true
	}
	for run := 1; run <= runs; run++ {
		pre := ""
		if runs > 1 {
			pre = fmt.Sprintf("run %d: ", run)
		}
		if has["slow"] {
			hp := r.find("slow", "haproxy-leastconn", run)
			lor, ewma := r.find("slow", "l7lb-lor", run), r.find("slow", "l7lb-ewma", run)
			switch {
			case lor == nil:
				skip("%sslow: l7lb-lor RPS ≥ haproxy-leastconn RPS — l7lb-lor not measured", pre)
			case hp == nil:
				skip("%sslow: l7lb-lor RPS ≥ haproxy-leastconn RPS — haproxy-leastconn not measured", pre)
			default:
				add(lor.RPS >= hp.RPS, "%sslow: l7lb-lor RPS ≥ haproxy-leastconn RPS: %.0f vs %.0f (%.2f×)", pre, lor.RPS, hp.RPS, lor.RPS/hp.RPS)
			}
			switch {
			case ewma == nil:
				skip("%sslow: l7lb-ewma targets — l7lb-ewma not measured", pre)
			default:
				if hp == nil {
					skip("%sslow: l7lb-ewma RPS ≥ 1.2× and p99 ≤ 0.5× haproxy-leastconn's — haproxy-leastconn not measured", pre)
				} else {
					add(ewma.RPS >= 1.2*hp.RPS, "%sslow: l7lb-ewma RPS ≥ 1.2× haproxy-leastconn's: %.0f vs %.0f (%.2f×)", pre, ewma.RPS, hp.RPS, ewma.RPS/hp.RPS)
					add(ewma.P99ms <= 0.5*hp.P99ms, "%sslow: l7lb-ewma p99 ≤ 0.5× haproxy-leastconn's: %.2f ms vs %.2f ms (%.2f×)", pre, ewma.P99ms, hp.P99ms, ewma.P99ms/hp.P99ms)
				}
				if ewma.SlowShareAfter == nil {
					add(false, "%sslow: l7lb-ewma < 1 %% of RPCs on the slow replica after the first %v: not measured (backend counters)", pre, r.Params.SlowSettle)
				} else {
					add(*ewma.SlowShareAfter < 1, "%sslow: l7lb-ewma < 1 %% of RPCs on the slow replica after the first %v: %.2f %% (%d of %d)", pre, r.Params.SlowSettle,
						*ewma.SlowShareAfter, ewma.SplitAfter[oddBackend], sum(ewma.SplitAfter))
				}
			}
		}
		if has["hung"] {
			for _, b := range []string{"l7lb-lor", "l7lb-ewma", "l7lb-rr"} {
				x := r.find("hung", b, run)
				if x == nil {
					skip("%shung: %s — not measured", pre, b)
					continue
				}
				add(x.ErrorsTotal <= 32, "%shung: %s failed RPCs ≤ 32: %d (%s)", pre, b, x.ErrorsTotal, codesString(x.Errors))
				if x.RPSRatio == nil {
					add(false, "%shung: %s RPS during the hang ≥ 2/3 of before: no RPS before the hang", pre, b)
				} else {
					add(*x.RPSRatio >= 2.0/3, "%shung: %s RPS during the hang ≥ 2/3 of before: %.0f / %.0f = %.2f", pre, b, *x.RPSDuring, *x.RPSBefore, *x.RPSRatio)
				}
			}
		}
		if has["equal"] && runs < 3 {
			rr := r.find("equal", "l7lb-rr", run)
			for _, v := range l7lbVariants {
				x := r.find("equal", v.Name, run)
				if x == nil {
					continue
				}
				if x.SplitDevPct == nil {
					add(false, "%sequal: %s split within ±5 %%: no split measured", pre, v.Name)
				} else {
					add(*x.SplitDevPct <= 5, "%sequal: %s split within ±5 %%: ±%.1f %% (%s)", pre, v.Name, *x.SplitDevPct, splitString(x.Split))
				}
				if v.Name == "l7lb-rr" {
					continue
				}
				if rr == nil || rr.CPUusPerRPC == nil || x.CPUusPerRPC == nil {
					skip("%sequal: %s CPU µs/RPC within 5 %% of l7lb-rr's — not both measured", pre, v.Name)
					continue
				}
				q := *x.CPUusPerRPC / *rr.CPUusPerRPC
				add(q <= 1.05, "%sequal: %s CPU µs/RPC ≤ 1.05× l7lb-rr's: %.1f vs %.1f (%.3f×; one run on a shared 2-core machine, noisy)", pre, v.Name, *x.CPUusPerRPC, *rr.CPUusPerRPC, q)
			}
		}
	}
	if has["equal"] && runs >= 3 {
		out = append(out, equalMedianChecks(r, runs)...)
	}
	all := true
	for _, c := range out {
		all = all && c.Result != "FAIL"
	}
	return out, all
}

// equalMedianChecks judges the equal scenario on medians over runs. One
// 5-second window on a shared 2-core machine moves l7lb-rr's own CPU per
// RPC by up to ±20 % from run to run, and a replica that the scheduler
// favours for a window draws a load-aware algorithm's share to it, as it
// should; the median over interleaved runs measures the algorithm rather
// than that noise. Each run's figures are still listed (INFO), and the
// spread of l7lb-rr against itself is printed as the noise floor.
func equalMedianChecks(r *balanceReport, runs int) []Check {
	var out []Check
	add := func(pass bool, format string, args ...any) {
		res := "FAIL"
		if pass {
			res = "PASS"
		}
		out = append(out, Check{res, fmt.Sprintf(format, args...)})
	}
	info := func(format string, args ...any) { out = append(out, Check{"INFO", fmt.Sprintf(format, args...)}) }
	var rrCPU []float64
	for run := 1; run <= runs; run++ {
		if x := r.find("equal", "l7lb-rr", run); x != nil && x.CPUusPerRPC != nil {
			rrCPU = append(rrCPU, *x.CPUusPerRPC)
		}
	}
	if len(rrCPU) > 1 {
		lo, hi := slices.Min(rrCPU), slices.Max(rrCPU)
		info("equal: noise floor: l7lb-rr against itself, CPU µs/RPC %.1f–%.1f over %d runs (max/min %.3f×)", lo, hi, len(rrCPU), hi/lo)
	}
	for _, v := range l7lbVariants {
		var devs, ratios []float64
		var per []string
		for run := 1; run <= runs; run++ {
			x, rr := r.find("equal", v.Name, run), r.find("equal", "l7lb-rr", run)
			if x == nil {
				continue
			}
			cell := fmt.Sprintf("run %d: split ±%s %%", run, optf(x.SplitDevPct, "%.1f"))
			if x.SplitDevPct != nil {
				devs = append(devs, *x.SplitDevPct)
			}
			if v.Name != "l7lb-rr" && rr != nil && rr.CPUusPerRPC != nil && x.CPUusPerRPC != nil {
				q := *x.CPUusPerRPC / *rr.CPUusPerRPC
				ratios = append(ratios, q)
				cell += fmt.Sprintf(", CPU %.3f× l7lb-rr's", q)
			}
			per = append(per, cell)
		}
		info("equal: %s per run: %s", v.Name, strings.Join(per, "; "))
		if len(devs) == 0 {
			add(false, "equal: %s split within ±5 %% (median over runs): no split measured", v.Name)
		} else {
			add(median(devs) <= 5, "equal: %s split within ±5 %% (median over %d runs): ±%.1f %%", v.Name, len(devs), median(devs))
		}
		if v.Name == "l7lb-rr" {
			continue
		}
		if len(ratios) == 0 {
			out = append(out, Check{"SKIP", fmt.Sprintf("equal: %s CPU µs/RPC within 5 %% of l7lb-rr's — not both measured", v.Name)})
			continue
		}
		add(median(ratios) <= 1.05, "equal: %s CPU µs/RPC ≤ 1.05× l7lb-rr's (median of the per-run ratios over %d runs): %.3f×", v.Name, len(ratios), median(ratios))
	}
	return out
}

func sum(s []int64) int64 {
	var t int64
	for _, c := range s {
		t += c
	}
	return t
}

func (r *balanceReport) markdown(scs []string) string {
	var b bytes.Buffer
	m, p := r.Meta, r.Params
	b.WriteString("### Balancing algorithms: l7lb against HAProxy leastconn and nginx least_conn\n\n")
	fmt.Fprintf(&b, "Measured %s with `%s`.\n\n", m.Date, r.Command)
	fmt.Fprintf(&b, "- Machine: %d × %s, %.0f GiB, %s, kernel %s\n", m.NProc, m.CPU, m.MemGiB, m.OS, m.Kernel)
	fmt.Fprintf(&b, "- 1-minute load average: %.2f before, %.2f after\n", m.LoadStart, m.LoadEnd)
	kinds := map[string]bool{}
	for _, name := range r.Order {
		k, _, _ := strings.Cut(name, "-")
		kinds[k] = true
	}
	for _, k := range []string{"l7lb", "haproxy", "nginx"} {
		if kinds[k] {
			fmt.Fprintf(&b, "- %s: %s\n", k, r.Versions[k])
		}
	}
	fmt.Fprintf(&b, "- Load: unary %s requests / %s replies, 1 TLS connection, %d in flight back to back; three backends, each its own process with one h2c listener; a fresh balancer and fresh backends for every row\n",
		size(p.ReqSize), size(p.ReplySize), p.InFlight)
	b.WriteString("- Rows: ")
	for i, name := range r.Order {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s = %s", name, r.Algos[name])
	}
	b.WriteString("\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	failedRow := func(rec BalanceRecord, cols int) bool {
		if rec.Failed == "" {
			return false
		}
		fmt.Fprintf(&b, "| %s | %d | FAILED: %s |%s\n", rec.Balancer, rec.Run, strings.ReplaceAll(firstLine(rec.Failed), "|", "/"), strings.Repeat(" |", max(cols-3, 0)))
		return true
	}
	perSecond := func(title string, rows func(rec BalanceRecord) []string, n int) {
		fmt.Fprintf(&b, "\n%s\n\n| balancer | run |", title)
		for s := 0; s < n; s++ {
			fmt.Fprintf(&b, " %d–%d s |", s, s+1)
		}
		b.WriteString("\n|---|---|" + strings.Repeat("---|", n) + "\n")
		for _, rec := range r.Records {
			if rec.Failed != "" || !contains(scs, rec.Scenario) {
				continue
			}
			cells := rows(rec)
			if cells == nil {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d |", rec.Balancer, rec.Run)
			for s := 0; s < n; s++ {
				c := "—"
				if s < len(cells) {
					c = cells[s]
				}
				b.WriteString(" " + c + " |")
			}
			b.WriteString("\n")
		}
	}
	for _, sc := range scs {
		switch sc {
		case "equal":
			pace := "back to back"
			if p.EqualRate > 0 {
				pace = fmt.Sprintf("paced at %.0f RPC/s in all, so that every balancer does the same work and CPU per RPC compares the algorithms", p.EqualRate)
			}
			fmt.Fprintf(&b, "\n#### equal\n\nThree equal replicas; %v warm-up, then a %v window; load %s.\n\n", p.EqualWarmup, p.EqualDuration, pace)
			b.WriteString("| balancer | run | RPS | p50 ms | p99 ms | CPU µs/RPC | CPU vs l7lb-rr | split (RPCs per backend) | max deviation from even | errors |\n|---|---|---|---|---|---|---|---|---|---|\n")
			for _, rec := range r.Records {
				if rec.Scenario != sc || failedRow(rec, 10) {
					continue
				}
				vs := "—"
				if rr := r.find("equal", "l7lb-rr", rec.Run); rr != nil && rr.CPUusPerRPC != nil && rec.CPUusPerRPC != nil {
					vs = fmt.Sprintf("%.3f×", *rec.CPUusPerRPC / *rr.CPUusPerRPC)
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | ±%s %% | %s |\n", rec.Balancer, rec.Run, fnum(rec.RPS), fnum(rec.P50ms), fnum(rec.P99ms),
					optf(rec.CPUusPerRPC, "%.1f"), vs, splitString(rec.Split), optf(rec.SplitDevPct, "%.1f"), codesString(rec.Errors))
			}
		case "slow":
			fmt.Fprintf(&b, "\n#### slow\n\nBackend %d holds every reply %v longer; %v of load from the first RPC on (RPS and latencies over all of it).\n\n", oddBackend, p.SlowDelay, p.SlowDuration)
			fmt.Fprintf(&b, "| balancer | run | RPS | p50 ms | p99 ms | on the slow replica | on the slow replica after %v | RPS after %v | p99 ms after %v | split | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n", p.SlowSettle, p.SlowSettle, p.SlowSettle)
			for _, rec := range r.Records {
				if rec.Scenario != sc || failedRow(rec, 11) {
					continue
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s %% | %s %% | %s | %s | %s | %s |\n", rec.Balancer, rec.Run, fnum(rec.RPS), fnum(rec.P50ms), fnum(rec.P99ms),
					optf(rec.SlowSharePct, "%.2f"), optf(rec.SlowShareAfter, "%.2f"), optf(rec.RPSAfterSettle, "%.0f"), optf(rec.P99AfterSettle, "%.2f"), splitString(rec.Split), codesString(rec.Errors))
			}
			n := int((p.SlowDuration + time.Second - 1) / time.Second)
			perSecond("Share of the RPCs started in each second that went to the slow replica (backend counters, sampled every "+p.Sample.String()+"):", func(rec BalanceRecord) []string {
				if rec.Scenario != "slow" {
					return nil
				}
				return shareBySecond(rec.Timeline, oddBackend, n)
			}, n)
		case "hung":
			fmt.Fprintf(&b, "\n#### hung\n\n%v of load, %v deadline per RPC; backend %d is stopped (SIGSTOP) at %v and continued (SIGCONT) after the load ended and every RPC finished.\n\n", p.HungDuration, p.HungDeadline, oddBackend, p.HungStopAt)
			fmt.Fprintf(&b, "| balancer | run | failed RPCs | RPS 0–%v | RPS %v–%v | ratio | p99 ms | last failed RPC started (after SIGSTOP) | failed RPCs started ≥ 1 s after SIGSTOP | last RPC to reach the hung backend started (after SIGSTOP) | RPCs that reached the hung backend, started after SIGSTOP | l7lb targets at the end |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
				p.HungStopAt, p.HungStopAt, p.HungDuration)
			for _, rec := range r.Records {
				if rec.Scenario != sc || failedRow(rec, 12) {
					continue
				}
				got := "—"
				if rec.HungGot != nil {
					got = strconv.FormatInt(*rec.HungGot, 10)
				}
				after := "—"
				if rec.FailedAfter1s != nil {
					after = strconv.FormatInt(*rec.FailedAfter1s, 10)
				}
				targets := "—"
				if len(rec.Targets) > 0 {
					targets = strings.ReplaceAll(strings.Join(rec.Targets, "; "), "|", "/")
				}
				fmt.Fprintf(&b, "| %s | %d | %d (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", rec.Balancer, rec.Run, rec.ErrorsTotal, codesString(rec.Errors),
					optf(rec.RPSBefore, "%.0f"), optf(rec.RPSDuring, "%.0f"), optf(rec.RPSRatio, "%.2f"), fnum(rec.P99ms),
					optf(rec.LastFailStartS, "+%.2f s"), after, optf(rec.LastStampS, "%+.2f s"), got, targets)
			}
			n := int((p.HungDuration + time.Second - 1) / time.Second)
			perSecond("RPCs completed successfully in each second (client side):", func(rec BalanceRecord) []string {
				if rec.Scenario != "hung" {
					return nil
				}
				var out []string
				for _, v := range rec.ClientRPS {
					out = append(out, fmt.Sprintf("%.0f", v))
				}
				return out
			}, n)
			m := int((p.HungDuration - p.HungStopAt + time.Second - 1) / time.Second)
			perSecond("RPCs that reached the hung backend, by when the client started them (seconds after the SIGSTOP; backend side, counted once it was continued):", func(rec BalanceRecord) []string {
				if rec.Scenario != "hung" || rec.HungStarts == nil {
					return nil
				}
				per := max(int(time.Second/p.Sample), 1)
				out := make([]string, m)
				for s := range out {
					var c int64
					for k := s * per; k < (s+1)*per && k < len(rec.HungStarts); k++ {
						c += rec.HungStarts[k]
					}
					out[s] = strconv.FormatInt(c, 10)
				}
				return out
			}, m)
		}
	}
	if len(r.Checks) > 0 {
		b.WriteString("\n#### Targets of issue 11\n\n")
		for _, c := range r.Checks {
			fmt.Fprintf(&b, "- %s — %s\n", c.Result, c.Text)
		}
	}
	fmt.Fprintf(&b, `
RPS counts the RPCs that completed successfully in the window; p50/p99 are their latencies.
CPU µs/RPC is utime+stime of the balancer's processes over the window, per RPC completed in
it. The split and the shares are from the backends' own counters of the RPCs started on them
(gRPC health checks are answered apart and not counted). l7lb gets health checks every 2 s with
a 1 s timeout and starts its load once all three targets are healthy (the time is in the JSON);
HAProxy and nginx have no active checks. In hung, "last failed RPC started" is client side (the
latest start of an RPC that failed, after the SIGSTOP); "last RPC to reach the hung backend" is
the backend's side: the latest client start time (from request metadata) among the RPCs the
stopped backend found in its sockets once continued, and how many of those the client started
after the SIGSTOP. Errors are by gRPC code over the whole load. balance.jsonl has every figure,
the backends' counters every %v and the client's completions per second.
`, p.Sample)
	return b.String()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// shareBySecond turns the cumulative counters into the share of backend
// i in the RPCs started in each second, the counters at the second's
// edges interpolated between the samples around them ("—" where a counter
// is unknown or there is no sample on one side).
func shareBySecond(tl []TimePoint, i, n int) []string {
	at := func(t float64) []float64 {
		for k := 1; k < len(tl); k++ {
			a, b := tl[k-1], tl[k]
			if a.T > t || b.T < t || len(a.Counts) != len(b.Counts) {
				continue
			}
			f := 0.0
			if b.T > a.T {
				f = (t - a.T) / (b.T - a.T)
			}
			out := make([]float64, len(a.Counts))
			for j := range out {
				if a.Counts[j] < 0 || b.Counts[j] < 0 {
					return nil
				}
				out[j] = float64(a.Counts[j]) + f*float64(b.Counts[j]-a.Counts[j])
			}
			return out
		}
		return nil
	}
	var out []string
	for s := 0; s < n; s++ {
		a, b := at(float64(s)), at(float64(s+1))
		if a == nil || b == nil {
			out = append(out, "—")
			continue
		}
		var tot float64
		for j := range a {
			tot += b[j] - a[j]
		}
		if tot <= 0 {
			out = append(out, "—")
			continue
		}
		out = append(out, fmt.Sprintf("%.1f %%", (b[i]-a[i])/tot*100))
	}
	return out
}
