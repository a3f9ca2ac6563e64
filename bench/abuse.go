package main

// The abuse scenarios (go run ./bench -abuse ...): what one misbehaving
// client does to the balancer, and to the well-behaved clients that share
// it. Each scenario runs against a fresh balancer process; the figures are
// the well-behaved clients' calls, errors and latencies, and the
// balancer's peak RSS.
//
//   - timeout-storm: a grpc-go client asks for 8 MiB replies with a 20 ms
//     deadline, 8 in flight, for 3 s (most calls time out mid-reply); then a
//     fresh client makes ordinary 1 MiB-reply calls for 3 s.
//   - timeout-storm-raw: the same storm, frame by frame: SETTINGS_INITIAL_
//     WINDOW_SIZE 0, 200 streams asking for 8 MiB replies (in batches of 20,
//     each reset with RST_STREAM CANCEL once its response HEADERS arrived),
//     then the same 3 s of 1 MiB-reply calls.
//   - stalled-reader: one connection grants the largest windows, asks for
//     40 replies of 64 MiB and never reads its socket for 10 s; meanwhile
//     well-behaved clients make 3 KiB/1 KiB calls, 32 in flight.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// abuseParams are the scenarios' sizes and times (tests shrink them).
type abuseParams struct {
	StormDuration time.Duration `json:"storm_s"`         // the grpc-go storm
	StormInFlight int           `json:"storm_in_flight"` // calls in flight, one connection
	StormReply    int           `json:"storm_reply_bytes"`
	StormDeadline time.Duration `json:"storm_deadline"`

	RawStreams int `json:"raw_streams"` // streams opened and reset by the raw variant
	RawBatch   int `json:"raw_batch"`   // opened together, reset once their HEADERS came (or after 1 s)
	RawReply   int `json:"raw_reply_bytes"`

	AfterDuration time.Duration `json:"after_s"` // the ordinary calls after a storm
	AfterInFlight int           `json:"after_in_flight"`
	AfterReply    int           `json:"after_reply_bytes"`
	AfterDeadline time.Duration `json:"after_deadline"`

	StallDuration time.Duration `json:"stall_s"`
	StallStreams  int           `json:"stall_streams"`
	StallReply    int           `json:"stall_reply_bytes"`

	BaselineDuration time.Duration `json:"baseline_s"` // well-behaved alone, before the stall
	GoodConns        int           `json:"good_conns"`
	GoodInFlight     int           `json:"good_in_flight"`
	GoodReq          int           `json:"good_req_bytes"`
	GoodReply        int           `json:"good_reply_bytes"`
	GoodDeadline     time.Duration `json:"good_deadline"`
}

var defaultAbuseParams = abuseParams{
	StormDuration: 3 * time.Second, StormInFlight: 8, StormReply: 8 << 20, StormDeadline: 20 * time.Millisecond,
	RawStreams: 200, RawBatch: 20, RawReply: 8 << 20,
	AfterDuration: 3 * time.Second, AfterInFlight: 2, AfterReply: 1 << 20, AfterDeadline: 2 * time.Second,
	StallDuration: 10 * time.Second, StallStreams: 40, StallReply: 64 << 20,
	BaselineDuration: 2 * time.Second, GoodConns: 4, GoodInFlight: 32, GoodReq: 3 << 10, GoodReply: 1 << 10,
	GoodDeadline: 5 * time.Second,
}

// Scenario is one abuse scenario.
type Scenario struct {
	Name string
	Desc func(p abuseParams) string
	run  func(t Target, p abuseParams, rec *AbuseRecord) error
}

var allScenarios = []Scenario{
	{"timeout-storm", func(p abuseParams) string {
		return fmt.Sprintf("a grpc-go client asks %s replies with a %v deadline, %d in flight, for %v; before and after it, %s",
			size(p.StormReply), p.StormDeadline, p.StormInFlight, p.StormDuration, p.victimsDesc())
	}, runTimeoutStorm},
	{"timeout-storm-raw", func(p abuseParams) string {
		return fmt.Sprintf("a raw HTTP/2 client sets SETTINGS_INITIAL_WINDOW_SIZE 0 and opens %d streams asking %s replies, %d at a time, each reset with RST_STREAM CANCEL once its response HEADERS came; before and after it, %s",
			p.RawStreams, size(p.RawReply), p.RawBatch, p.victimsDesc())
	}, runTimeoutStormRaw},
	{"stalled-reader", func(p abuseParams) string {
		return fmt.Sprintf("a raw HTTP/2 client grants windows of 2^31-1 (SETTINGS_INITIAL_WINDOW_SIZE and a connection WINDOW_UPDATE), asks %d replies of %s and never reads its socket, for %v; meanwhile (and %v before it, \"alone\") %d fresh connections make %s/%s unary calls, %d in flight, %v deadline",
			p.StallStreams, size(p.StallReply), p.StallDuration, p.BaselineDuration, p.GoodConns, size(p.GoodReq), size(p.GoodReply), p.GoodInFlight, p.GoodDeadline)
	}, runStalledReader},
}

func (p abuseParams) victimsDesc() string {
	return fmt.Sprintf("a fresh grpc-go client asks %s replies (64 B requests), %d in flight on 1 connection, %v deadline, for %v",
		size(p.AfterReply), p.AfterInFlight, p.AfterDeadline, p.AfterDuration)
}

func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// phaseResult is what one group of grpc-go clients saw.
type phaseResult struct {
	WindowS    float64           `json:"window_s"`
	Conns      int               `json:"conns"`
	InFlight   int               `json:"in_flight"`
	ReplyBytes int               `json:"reply_bytes"`
	DeadlineMs float64           `json:"deadline_ms"` // per call
	Calls      int64             `json:"calls"`       // started in the window
	OK         int64             `json:"ok"`          // completed in the window, reply of the right size
	Late       int64             `json:"ok_late"`     // completed after the window's end (started in it)
	Errors     map[string]int64  `json:"errors"`      // by gRPC code
	ErrorsTot  int64             `json:"errors_total"`
	FirstError string            `json:"first_error,omitempty"`
	Samples    map[string]string `json:"error_samples,omitempty"`            // the first message of every code
	FirstErrS  *float64          `json:"first_error_call_start_s,omitempty"` // when the first failing call started, from the phase's start
	LastErrS   *float64          `json:"last_error_call_start_s,omitempty"`  // and the last
	RPS        float64           `json:"rps"`                                // OK / window
	P50ms      float64           `json:"p50_ms"`
	P99ms      float64           `json:"p99_ms"`
	MaxMs      float64           `json:"max_ms"`
}

// rawAbuse is what the raw-frame abuser did and saw.
type rawAbuse struct {
	Streams   int     `json:"streams_opened"`
	Resets    int     `json:"rst_sent"`
	Seconds   float64 `json:"seconds"`
	Err       string  `json:"error,omitempty"`
	Headers   int     `json:"response_headers"`
	DataBytes int64   `json:"data_bytes_received"`
	ServerRST int     `json:"server_rst_stream"`
	GoAway    string  `json:"goaway,omitempty"`
	ReadErr   string  `json:"read_error,omitempty"`
}

// AbuseRecord is one scenario × balancer × run; one JSON line each.
type AbuseRecord struct {
	Time     string       `json:"time"`
	Run      int          `json:"run"`
	Scenario string       `json:"scenario"`
	Balancer string       `json:"balancer"`
	Control  *phaseResult `json:"control,omitempty"`  // timeout-storm*: the victims' calls before the storm, on the same balancer
	Storm    *phaseResult `json:"storm,omitempty"`    // timeout-storm: the abusing grpc-go client
	Raw      *rawAbuse    `json:"raw,omitempty"`      // the raw-frame abuser
	Baseline *phaseResult `json:"baseline,omitempty"` // stalled-reader: well-behaved clients alone, before
	Victims  *phaseResult `json:"victims,omitempty"`  // well-behaved clients: after a storm, during the stall
	PeakRSS  *float64     `json:"balancer_peak_rss_mib"`
	HWM      *float64     `json:"balancer_vmhwm_mib"`
	Failed   string       `json:"failed,omitempty"`
}

// unaryPhase runs inFlight workers over conns fresh grpc-go connections:
// each makes unary calls (reqSize bytes, replySize asked) with a per-call
// deadline, starting calls until window has passed, and stops; a call
// started in the window ends by its deadline. The connections are closed
// when it returns.
func unaryPhase(t Target, conns, inFlight, reqSize, replySize int, deadline, window time.Duration) *phaseResult {
	res := &phaseResult{Conns: conns, InFlight: inFlight, ReplyBytes: replySize,
		DeadlineMs: float64(deadline) / float64(time.Millisecond), Errors: map[string]int64{}}
	ccs, err := dialTargets(t, conns)
	if err != nil {
		res.Errors[codes.Unavailable.String()]++
		res.ErrorsTot, res.FirstError = 1, err.Error()
		return res
	}
	defer func() {
		for _, c := range ccs {
			c.Close()
		}
	}()
	req := make([]byte, reqSize)
	ctx := metadata.AppendToOutgoingContext(context.Background(), mdMode, "unary", mdReplySize, fmt.Sprint(replySize))
	start := time.Now()
	end := start.Add(window)
	stats := make([]workerStats, inFlight)
	late := make([]int64, inFlight)
	var smu sync.Mutex
	samples := map[string]string{}
	var firstErr, lastErr time.Duration = -1, -1
	var wg sync.WaitGroup
	for i := 0; i < inFlight; i++ {
		wg.Add(1)
		go func(i int, cc *grpc.ClientConn) {
			defer wg.Done()
			ws := &stats[i]
			for n := 0; n < maxOpsPerWorker && time.Now().Before(end); n++ {
				cctx, cancel := context.WithTimeout(ctx, deadline)
				var out frame
				t0 := time.Now()
				err := cc.Invoke(cctx, methodUnary, &frame{data: req}, &out)
				t1 := time.Now()
				cancel()
				ws.ops++ // calls started
				if err == nil && out.n != replySize {
					err = status.Errorf(codes.DataLoss, "reply of %d bytes, want %d", out.n, replySize)
				}
				if err != nil {
					ws.fail(err)
					smu.Lock()
					if c := status.Code(err).String(); samples[c] == "" {
						samples[c] = err.Error()
					}
					if at := t0.Sub(start); firstErr < 0 || at < firstErr {
						firstErr = at
					}
					if at := t0.Sub(start); at > lastErr {
						lastErr = at
					}
					smu.Unlock()
					if c := status.Code(err); c != codes.DeadlineExceeded && c != codes.Canceled {
						time.Sleep(10 * time.Millisecond) // do not spin on a refusing balancer
					}
					continue
				}
				if t1.After(end) {
					late[i]++
					continue
				}
				ws.streams++ // OK in the window
				ws.lat = append(ws.lat, t1.Sub(t0))
			}
		}(i, ccs[i%len(ccs)])
	}
	wg.Wait()
	res.WindowS = window.Seconds()
	var lat []time.Duration
	for i := range stats {
		ws := &stats[i]
		res.Calls += ws.ops
		res.OK += ws.streams
		res.Late += late[i]
		lat = append(lat, ws.lat...)
		for k, v := range ws.errs {
			res.Errors[k] += v
			res.ErrorsTot += v
		}
		if res.FirstError == "" {
			res.FirstError = ws.firstErr
		}
	}
	if len(samples) > 0 {
		res.Samples = samples
		res.FirstErrS, res.LastErrS = fptr(firstErr.Seconds()), fptr(lastErr.Seconds())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.RPS = float64(res.OK) / res.WindowS
	res.P50ms, res.P99ms, res.MaxMs = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1)
	return res
}

func (p abuseParams) victims(t Target) *phaseResult {
	return unaryPhase(t, 1, p.AfterInFlight, 64, p.AfterReply, p.AfterDeadline, p.AfterDuration)
}

func runTimeoutStorm(t Target, p abuseParams, rec *AbuseRecord) error {
	rec.Control = p.victims(t)
	rec.Storm = unaryPhase(t, 1, p.StormInFlight, 64, p.StormReply, p.StormDeadline, p.StormDuration)
	rec.Victims = p.victims(t)
	return nil
}

func runTimeoutStormRaw(t Target, p abuseParams, rec *AbuseRecord) error {
	rec.Control = p.victims(t)
	rec.Raw = &rawAbuse{}
	t0 := time.Now()
	rc, err := dialRaw(t, []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 0}, {ID: http2.SettingEnablePush, Val: 0}}, 0, 5*time.Second)
	if err != nil {
		return fmt.Errorf("raw connection: %w", err)
	}
	var closing atomic.Bool
	st := &rawReadStats{headers: map[uint32]bool{}}
	readDone := make(chan struct{})
	go func() { defer close(readDone); rc.readLoop(&closing, st, 10_000_000) }()
	for rec.Raw.Streams < p.RawStreams && err == nil {
		var batch []uint32
		for len(batch) < p.RawBatch && rec.Raw.Streams < p.RawStreams {
			var id uint32
			if id, err = rc.openUnary(serverName, 64, p.RawReply); err != nil {
				break
			}
			batch = append(batch, id)
			rec.Raw.Streams++
		}
		// Reset each stream once its reply has begun (its HEADERS came,
		// so the balancer holds reply bytes it cannot send), or after 1 s.
		wait := time.Now().Add(time.Second)
		for _, id := range batch {
			for i := 0; i < 1000 && !st.hasHeaders(id) && time.Now().Before(wait); i++ {
				time.Sleep(2 * time.Millisecond)
			}
		}
		for _, id := range batch {
			if err == nil {
				if err = rc.reset(id, http2.ErrCodeCancel); err == nil {
					rec.Raw.Resets++
				}
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // the last resets reach the balancer before we leave
	closing.Store(true)
	rc.close()
	<-readDone
	rec.Raw.Seconds = time.Since(t0).Seconds()
	if err != nil {
		rec.Raw.Err = err.Error()
	}
	st.mu.Lock()
	rec.Raw.Headers, rec.Raw.DataBytes, rec.Raw.ServerRST, rec.Raw.GoAway, rec.Raw.ReadErr = st.Headers, st.DataBytes, st.ServerRST, st.GoAway, st.ReadErr
	st.mu.Unlock()
	rec.Victims = p.victims(t)
	return nil
}

func (p abuseParams) good(t Target, window time.Duration) *phaseResult {
	return unaryPhase(t, p.GoodConns, p.GoodInFlight, p.GoodReq, p.GoodReply, p.GoodDeadline, window)
}

func runStalledReader(t Target, p abuseParams, rec *AbuseRecord) error {
	if p.BaselineDuration > 0 {
		rec.Baseline = p.good(t, p.BaselineDuration)
	}
	rec.Raw = &rawAbuse{}
	t0 := time.Now()
	rc, err := dialRaw(t, []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: maxWindow}, {ID: http2.SettingEnablePush, Val: 0}}, maxWindow, 5*time.Second)
	if err != nil {
		return fmt.Errorf("raw connection: %w", err)
	}
	// From here on the socket is never read.
	for i := 0; i < p.StallStreams; i++ {
		if _, err = rc.openUnary(serverName, 64, p.StallReply); err != nil {
			rec.Raw.Err = err.Error()
			break
		}
		rec.Raw.Streams++
	}
	rec.Victims = p.good(t, p.StallDuration-time.Since(t0))
	rc.conn.Close()
	rec.Raw.Seconds = time.Since(t0).Seconds()
	return nil
}

// measureAbuse starts a fresh balancer, runs one scenario through it and
// stops it.
func measureAbuse(e *env, name string, sc Scenario, p abuseParams, runNo, seq int) AbuseRecord {
	rec := AbuseRecord{Time: time.Now().UTC().Format(time.RFC3339), Run: runNo, Scenario: sc.Name, Balancer: name}
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
	err = sc.run(bal.target(e), p, &rec)
	if sampler != nil {
		rec.PeakRSS = fptr(float64(sampler.Stop()) / 1024)
		rec.HWM = fptr(float64(treeKB(procTree(bal.Pid), "VmHWM")) / 1024)
	}
	if err != nil {
		rec.Failed = err.Error()
	}
	return rec
}

// abuseReport is what an -abuse run produced.
type abuseReport struct {
	Records  []AbuseRecord
	Order    []string
	Versions map[string]string
	Notes    []string
	Meta     Meta
	Params   abuseParams
	Command  string
}

func runAbuse(cfg config, e *env, order []string, versions map[string]string, notes []string, meta Meta) (*abuseReport, error) {
	var scs []Scenario
	for _, name := range cfg.Abuse {
		found := false
		for _, sc := range allScenarios {
			if sc.Name == name {
				scs = append(scs, sc)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown abuse scenario %q (timeout-storm, timeout-storm-raw, stalled-reader)", name)
		}
	}
	p := defaultAbuseParams
	if cfg.abuseParams != nil {
		p = *cfg.abuseParams
	}
	rep := &abuseReport{Order: order, Versions: versions, Notes: notes, Meta: meta, Params: p, Command: abuseCommand(cfg)}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	jf, err := os.Create(filepath.Join(cfg.Out, "abuse.jsonl"))
	if err != nil {
		return nil, err
	}
	defer jf.Close()
	enc := json.NewEncoder(jf)
	total := cfg.Repeat * len(scs) * len(order)
	fmt.Printf("%d abuse measurements (%d runs × %d scenarios × %d balancers: %v)\n", total, cfg.Repeat, len(scs), len(order), order)
	seq := 0
	for r := 1; r <= cfg.Repeat; r++ {
		for _, sc := range scs {
			for _, b := range order {
				seq++
				rec := measureAbuse(e, b, sc, p, r, seq)
				rep.Records = append(rep.Records, rec)
				if err := enc.Encode(rec); err != nil {
					return nil, err
				}
				fmt.Printf("[%d/%d] run %d %s %s: %s\n", seq, total, r, sc.Name, b, abuseLine(rec))
			}
		}
	}
	rep.Meta.LoadEnd = loadAvg()
	md := rep.markdown(scs)
	fmt.Println()
	fmt.Print(md)
	return rep, os.WriteFile(filepath.Join(cfg.Out, "abuse.md"), []byte(md), 0o644)
}

func abuseCommand(cfg config) string {
	var b strings.Builder
	b.WriteString("go run ./bench -abuse " + strings.Join(cfg.Abuse, ","))
	if len(cfg.Peers) > 0 {
		b.WriteString(" -peers " + strings.Join(cfg.Peers, ","))
	}
	if cfg.Repeat != 1 {
		fmt.Fprintf(&b, " -repeat %d", cfg.Repeat)
	}
	if cfg.L7LBBin != "" {
		b.WriteString(" -l7lb-bin " + cfg.L7LBBin)
	}
	return b.String()
}

func codesString(m map[string]int64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func mib(p *float64) string {
	if p == nil {
		return "—"
	}
	return fnum(*p)
}

func abuseLine(r AbuseRecord) string {
	if r.Failed != "" {
		return "FAILED: " + firstLine(r.Failed)
	}
	var b strings.Builder
	if r.Storm != nil {
		fmt.Fprintf(&b, "storm calls=%d ok=%d errors={%s}; ", r.Storm.Calls, r.Storm.OK, codesString(r.Storm.Errors))
	}
	if r.Raw != nil {
		fmt.Fprintf(&b, "raw streams=%d headers=%d rst=%d; ", r.Raw.Streams, r.Raw.Headers, r.Raw.Resets)
	}
	if c := r.Control; c != nil {
		fmt.Fprintf(&b, "before ok=%d errors={%s}; ", c.OK, codesString(c.Errors))
	}
	if r.Baseline != nil {
		fmt.Fprintf(&b, "alone rps=%.0f p99=%.1fms; ", r.Baseline.RPS, r.Baseline.P99ms)
	}
	if v := r.Victims; v != nil {
		fmt.Fprintf(&b, "victims ok=%d rps=%.0f p50=%.1fms p99=%.1fms errors={%s}; ", v.OK, v.RPS, v.P50ms, v.P99ms, codesString(v.Errors))
	}
	fmt.Fprintf(&b, "peak RSS %s MiB (VmHWM %s)", mib(r.PeakRSS), mib(r.HWM))
	return b.String()
}

func (r *abuseReport) markdown(scs []Scenario) string {
	var b bytes.Buffer
	m := r.Meta
	b.WriteString("### Abuse scenarios: l7lb against its peers\n\n")
	fmt.Fprintf(&b, "Measured %s with `%s`.\n\n", m.Date, r.Command)
	fmt.Fprintf(&b, "- Machine: %d × %s, %.0f GiB, %s, kernel %s\n", m.NProc, m.CPU, m.MemGiB, m.OS, m.Kernel)
	fmt.Fprintf(&b, "- 1-minute load average: %.2f before, %.2f after\n", m.LoadStart, m.LoadEnd)
	for _, bal := range r.Order {
		fmt.Fprintf(&b, "- %s: %s\n", bal, r.Versions[bal])
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	failed := func(rec AbuseRecord, cols int) bool {
		if rec.Failed == "" {
			return false
		}
		fmt.Fprintf(&b, "| %s | %d | FAILED: %s |%s\n", rec.Balancer, rec.Run, strings.ReplaceAll(firstLine(rec.Failed), "|", "/"), strings.Repeat(" |", cols-3))
		return true
	}
	phase := func(v *phaseResult) string {
		if v == nil {
			return "— | — | — | — | —"
		}
		return fmt.Sprintf("%d | %s | %s | %s | %s", v.OK, codesString(v.Errors), fnum(v.RPS), fnum(v.P50ms), fnum(v.P99ms))
	}
	before := func(v *phaseResult) string {
		if v == nil {
			return "— | —"
		}
		return fmt.Sprintf("%d | %s", v.OK, codesString(v.Errors))
	}
	for _, sc := range scs {
		fmt.Fprintf(&b, "\n#### %s\n\n%s.\n\n", sc.Name, sc.Desc(r.Params))
		switch sc.Name {
		case "timeout-storm":
			b.WriteString("| balancer | run | before: calls completed | before: errors | storm: calls | storm: OK | storm: errors | after: calls completed | after: errors | after: RPS | after: p50 ms | after: p99 ms | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		case "timeout-storm-raw":
			b.WriteString("| balancer | run | before: calls completed | before: errors | raw: streams opened / with HEADERS / reset | raw: DATA bytes received | after: calls completed | after: errors | after: RPS | after: p50 ms | after: p99 ms | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		case "stalled-reader":
			b.WriteString("| balancer | run | peak RSS MiB | VmHWM MiB | alone: RPS | alone: p99 ms | during: calls completed | during: errors | during: RPS | during: p50 ms | during: p99 ms | stalled streams opened |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		}
		for _, rec := range r.Records {
			if rec.Scenario != sc.Name {
				continue
			}
			switch sc.Name {
			case "timeout-storm":
				if failed(rec, 13) {
					continue
				}
				s := rec.Storm
				fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %s | %s | %s |\n", rec.Balancer, rec.Run, before(rec.Control), s.Calls, s.OK, codesString(s.Errors), phase(rec.Victims), mib(rec.PeakRSS))
			case "timeout-storm-raw":
				if failed(rec, 12) {
					continue
				}
				rw := rec.Raw
				note := ""
				if rw.Err != "" {
					note = " (" + strings.ReplaceAll(firstLine(rw.Err), "|", "/") + ")"
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %d / %d / %d%s | %d | %s | %s |\n", rec.Balancer, rec.Run, before(rec.Control), rw.Streams, rw.Headers, rw.Resets, note, rw.DataBytes, phase(rec.Victims), mib(rec.PeakRSS))
			case "stalled-reader":
				if failed(rec, 12) {
					continue
				}
				alone := "— | —"
				if a := rec.Baseline; a != nil {
					alone = fnum(a.RPS) + " | " + fnum(a.P99ms)
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %d |\n", rec.Balancer, rec.Run, mib(rec.PeakRSS), mib(rec.HWM), alone, phase(rec.Victims), rec.Raw.Streams)
			}
		}
	}
	b.WriteString(`
"before", "after", "alone" and "during" are well-behaved grpc-go clients on fresh connections.
"calls completed" are calls that finished inside the window with a reply of the right size; a call
that hangs ends at its deadline (DeadlineExceeded). Peak RSS is the highest summed VmRSS of the
balancer's processes, sampled every 20 ms over the whole scenario; VmHWM is read at its end. Every
scenario × balancer starts a fresh balancer; the backend is shared. abuse.jsonl has every figure,
with the first message of every error code and when the failing calls started.
`)
	return b.String()
}
