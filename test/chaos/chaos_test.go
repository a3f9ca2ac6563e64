// Package chaos is an adversarial harness for l7lb's HTTP/2 data path:
// rounds of misbehaving clients (raw HTTP/2 frames over TLS) and
// misbehaving targets (a raw h2c target in the echo service's target
// group) next to well-behaved clients (grpc-go echo calls and the
// official Milvus Go SDK), after each of which the data path must
// settle back to rest: no stream left anywhere, every idle window back
// at its initial value, no request in flight, goroutines and memory
// back near the baseline, and the well-behaved clients unharmed.
//
// Short run (about a minute on 2 cores; 8 rounds of 3 s):
//
//	go test -count=1 -v ./test/chaos
//
// Reproduce a run, or one round of it (each round prints its seed):
//
//	go test -count=1 -v ./test/chaos -chaos.seed=N
//	go test -count=1 -v ./test/chaos -chaos.seed=ROUNDSEED -chaos.rounds=1
//
// One catalogue entry alone (or a few), every round:
//
//	go test -count=1 -v ./test/chaos -chaos.only=win0 -chaos.rounds=3
//	go test -count=1 -v ./test/chaos -chaos.only=cancel,t-freeze
//
// Soak (rounds until the duration is over):
//
//	go test -count=1 -v -timeout=0 ./test/chaos -chaos.soak=30m
//
// The catalogue is in catalogue_test.go (or see -chaos.only's help).
//
// What each round checks, once the misbehaving clients have closed and
// the data path had up to -chaos.settle to come to rest (the violation
// kinds in the report):
//
//   - client-streams-left, target-streams-left, target-inflight: no
//     stream on any client or target connection, InFlight 0 everywhere;
//   - client-conn-left: only the well-behaved clients' connections left;
//   - target-recv-window, target-send-window, target-queued: every idle
//     target connection has RecvWindow == RecvWindowInitial,
//     SendWindow > 0 and nothing queued; client-recv-window,
//     client-resp-granted, client-queued: the same for idle client
//     connections (RespGranted 0);
//   - raw-target-streams-left, raw-target-window: the raw target's own
//     count: no stream l7lb left open on it, and an idle connection lets
//     it send at least 3/4 of what l7lb granted (l7lb returns credit
//     once a quarter is owed, so less is credit it will never return);
//   - goroutines: at most the baseline + goroutineMargin;
//   - rss, rss-peak: settled VmRSS (after GC and FreeOSMemory) at most
//     baseline + 96 MiB, and at most baseline + 320 MiB at any time in
//     the round (not checked under -race);
//   - good-errors, good-p99-echo, good-p99-sdk: no well-behaved call
//     failed (except calls that went to the raw target while it was
//     killed, frozen or abruptly going away: "fault casualties"), and
//     p99 at most max(2x baseline, baseline + 50 ms) with -chaos.p99
//     (a timing check, so off by default; not under -race).
//
// And during the round: client-queued-over-buffer and
// client-resp-granted-over-buffer (what l7lb holds per client connection
// against h2proxy.Limits.ConnBuffer), and per actor: client-recv-window
// etc. on its own connection before it closes it (idleCheck),
// client-window-exhausted, deadline-not-enforced, actor-stuck.
//
// All rounds of a run share one l7lb, so what a round leaks is still
// there in the next ones (marked "also after the previous round"), as it
// would be in production; -chaos.only isolates an entry.
package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	milvuslog "github.com/milvus-io/milvus/pkg/v2/log"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/h2proxy"
	"github.com/l7lb/l7lb/internal/runtime"
)

var (
	seedFlag   = flag.Uint64("chaos.seed", 0, "seed of the run (0: from the clock); round i uses seed+i-1, and -chaos.seed=S -chaos.rounds=1 replays the round with seed S")
	roundsFlag = flag.Int("chaos.rounds", 8, "number of rounds (without -chaos.soak)")
	roundFlag  = flag.Duration("chaos.round", 3*time.Second, "how long each round's traffic runs")
	soakFlag   = flag.Duration("chaos.soak", 0, "run rounds until this much time has passed (a soak), instead of -chaos.rounds")
	onlyFlag   = flag.String("chaos.only", "", "comma-separated catalogue entries to draw from (default: all):\n"+catalogueText())
	settleFlag = flag.Duration("chaos.settle", 5*time.Second, "how long the data path may take to settle after a round")
	// The p99 check is a timing check: on a 2-core machine running CI
	// it failed once at 161-171 ms against a 7 ms baseline, in a round
	// with the maximum concurrent streams, half messages, reset uploads
	// and a 4 KiB-window target, with no error and 730 calls done. Every
	// round prints the figures; -chaos.p99 makes them fail the run (for
	// soaks on a quiet machine), never by default.
	p99Flag = flag.Bool("chaos.p99", false, "fail a round whose well-behaved p99 exceeds max(2x baseline, baseline+50ms)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	milvuslog.SetLevel(zapcore.ErrorLevel) // the SDK logs every failed call
	os.Exit(m.Run())
}

// round is one round's shared state.
type round struct {
	n    int
	seed uint64
	e    *env
	raw  *rawTarget
	end  time.Time

	mu         sync.Mutex
	violations []violation
}

func (r *round) violate(kind, detail string) {
	r.mu.Lock()
	r.violations = append(r.violations, violation{kind, detail})
	r.mu.Unlock()
}

// baseline is what the rounds are measured against.
type baseline struct {
	goroutines int
	rss        int64
	echo, sdk  latStats
}

type roundResult struct {
	n          int
	seed       uint64
	draw       string
	violations []violation
	lines      []string // the report
}

func TestChaos(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	var only []string
	if *onlyFlag != "" {
		for _, name := range strings.Split(*onlyFlag, ",") {
			name = strings.TrimSpace(name)
			if findEntry(name) == nil {
				t.Fatalf("-chaos.only: no catalogue entry %q; the catalogue:\n%s", name, catalogueText())
			}
			only = append(only, name)
		}
	}
	t.Logf("chaos seed %d (replay the run with -chaos.seed=%d)", seed, seed)

	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := demo.Connect(ctx, e.addr, serverName, e.pool)
	if err != nil {
		t.Fatalf("SDK connect: %v", err)
	}
	if err := setupCollection(ctx, admin); err != nil {
		t.Fatalf("SDK setup: %v", err)
	}
	admin.Close(ctx)
	good, err := newGoodClients(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	defer good.close()
	if !e.waitEchoHealthy(15 * time.Second) {
		t.Fatalf("the chaos group's targets did not all turn healthy: %s", e.targetStates())
	}
	good.run(seed, time.Second) // warm-up: connections, pools, JIT of the page cache
	// The SDK's RPCs on its collection went through the collection hold
	// (heldService): the rounds below exercise it under every actor.
	if n := e.obs.groupCount(heldService + ":19530"); n == 0 {
		t.Fatalf("no RPC reached %s: the collection rule is not exercised", heldService)
	} else {
		t.Logf("warm-up: %d RPCs routed by the SDK's collection (the hold path)", n)
	}

	var results []roundResult
	base := &baseline{}
	res := runRound(t, e, good, 0, seed, nil, base)
	results = append(results, res)
	t.Logf("baseline: echo %v; sdk %v; goroutines %d; rss %s", base.echo, base.sdk, base.goroutines, mib(base.rss))
	if base.echo.n < 200 || base.sdk.n < 100 {
		t.Fatalf("baseline round has too few samples (echo %d, sdk %d): the machine is too slow for the latency check", base.echo.n, base.sdk.n)
	}

	start := time.Now()
	prev := kindsOf(res.violations)
	for n := 1; n <= 100_000; n++ {
		if *soakFlag > 0 {
			if time.Since(start) >= *soakFlag {
				break
			}
		} else if n > *roundsFlag {
			break
		}
		rseed := seed + uint64(n) - 1
		actors := drawRound(rseed, only)
		if !e.waitEchoHealthy(6 * time.Second) {
			t.Logf("round %d: chaos group not all healthy at the start: %s", n, e.targetStates())
		}
		res := runRound(t, e, good, n, rseed, actors, base)
		for i, v := range res.violations {
			if prev[v.kind] {
				res.violations[i].kind += " (also after the previous round)"
			}
		}
		prev = kindsOf(res.violations)
		results = append(results, res)
	}

	// Summary: every round with what it found; each violating round
	// fails the test with its own message.
	var sum strings.Builder
	fmt.Fprintf(&sum, "chaos summary, seed %d, %d rounds:\n", seed, len(results)-1)
	for _, r := range results {
		status := "ok"
		if len(r.violations) > 0 {
			status = fmt.Sprintf("%d violations: %s", len(r.violations), strings.Join(sortedKinds(r.violations), ", "))
		}
		fmt.Fprintf(&sum, "  round %d seed=%d draw=%s: %s\n", r.n, r.seed, r.draw, status)
	}
	t.Log(sum.String())
	for _, r := range results {
		if len(r.violations) > 0 {
			t.Errorf("round %d (seed %d, draw %s) broke %d invariants:\n%s\nreplay: go test ./test/chaos -run TestChaos -chaos.seed=%d -chaos.rounds=1",
				r.n, r.seed, r.draw, len(r.violations), violationText(r.violations, 4), r.seed)
		}
	}
}

// drawRound picks a round's actors from its seed: one to three
// misbehaving clients and, every other round on average, one target
// fault. With -chaos.only the draw is limited to those entries.
func drawRound(seed uint64, only []string) []*actor {
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73))
	var clients, targets []*entry
	for i := range catalogue {
		en := &catalogue[i]
		if len(only) > 0 && !contains(only, en.name) {
			continue
		}
		if en.target {
			targets = append(targets, en)
		} else {
			clients = append(clients, en)
		}
	}
	var out []*actor
	if len(clients) > 0 {
		k := 1 + rng.IntN(min(3, len(clients)))
		for _, i := range rng.Perm(len(clients))[:k] {
			out = append(out, clients[i].draw(rng))
		}
	}
	if len(targets) > 0 && (len(clients) == 0 || rng.IntN(2) == 0) {
		out = append(out, targets[rng.IntN(len(targets))].draw(rng))
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func drawText(actors []*actor) string {
	if len(actors) == 0 {
		return "[baseline: well-behaved clients only]"
	}
	var parts []string
	for _, a := range actors {
		parts = append(parts, a.String())
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// runRound runs one round and checks it. With no actors it is the
// baseline round, and fills base.
func runRound(t *testing.T, e *env, good *goodClients, n int, seed uint64, actors []*actor, base *baseline) roundResult {
	t.Helper()
	res := roundResult{n: n, seed: seed, draw: drawText(actors)}
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		res.lines = append(res.lines, line)
	}
	logf("round %d seed=%d draw=%s", n, seed, res.draw)
	t.Logf("round %d seed=%d draw=%s: running %v", n, seed, res.draw, *roundFlag)

	e.obs.reset()
	raw := e.rawTarget()
	dur := *roundFlag
	r := &round{n: n, seed: seed, e: e, raw: raw, end: time.Now().Add(dur)}
	ctx, cancel := context.WithDeadline(context.Background(), r.end)
	defer cancel()

	// Samplers: peak RSS, and what l7lb holds per client connection.
	var peakRSS int64
	type connPeak struct {
		queued, granted int64
		streams         int
	}
	peaks := map[string]connPeak{}
	var sampWG sync.WaitGroup
	sampWG.Add(1)
	go func() {
		defer sampWG.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if v := rssBytes(); v > peakRSS {
				peakRSS = v
			}
			if i%2 == 0 {
				for _, c := range e.rt.Flow().Clients {
					p := peaks[c.Client]
					p.queued = max(p.queued, int64(c.Queued))
					p.granted = max(p.granted, c.RespGranted)
					p.streams = max(p.streams, c.Streams)
					peaks[c.Client] = p
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	// The actors.
	acts := make([]*act, len(actors))
	var actWG sync.WaitGroup
	actDone := make([]chan struct{}, len(actors))
	for i, a := range actors {
		ac := &act{r: r, ctx: ctx, rng: rand.New(rand.NewPCG(seed, uint64(i+1))), name: a.name}
		acts[i] = ac
		actDone[i] = make(chan struct{})
		actWG.Add(1)
		go func() {
			defer actWG.Done()
			defer close(actDone[i])
			defer ac.closeAll()
			a.run(ac)
		}()
	}

	// The well-behaved clients, for the same time.
	calls := good.run(seed, dur)
	cancel()
	sampWG.Wait()
	grace := time.After(3 * time.Second)
	for i, ch := range actDone {
		select {
		case <-ch:
		case <-grace:
			r.violate("actor-stuck", fmt.Sprintf("%s did not return within 3s after the round ended (blocked on l7lb?); its connections are closed now", actors[i]))
			acts[i].closeAll()
		}
	}
	// Target faults end with the round.
	if err := raw.recover(); err != nil {
		r.violate("harness", err.Error())
	}
	for _, ac := range acts {
		ac.mu.Lock()
		notes := append([]string(nil), ac.notes...)
		ac.mu.Unlock()
		for _, note := range notes {
			logf("  %s: %s", ac.name, note)
		}
	}

	// Settle: poll until the data path is at rest or the deadline.
	settleStart := time.Now()
	var flowVs []violation
	var gor int
	var lastSummary string
	var lastFlow runtime.Flow
	for {
		f := e.rt.Flow()
		lastFlow = f
		flowVs = e.flowViolations(f)
		gor = goruntime.NumGoroutine()
		lastSummary = e.flowSummary(f)
		restGor := base.goroutines == 0 || gor <= base.goroutines+goroutineMargin
		if (len(flowVs) == 0 && restGor) || time.Since(settleStart) > *settleFlag {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	settled := time.Since(settleStart)
	rss := settledRSS()
	// Every actor has returned by now (closeAll unblocked them); if one
	// has not, it is reported above and not waited for.
	waited := make(chan struct{})
	go func() { actWG.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
	}

	var vs []violation
	r.mu.Lock()
	vs = append(vs, r.violations...)
	r.mu.Unlock()
	vs = append(vs, flowVs...)

	// What l7lb held per client connection during the round.
	for client, p := range peaks {
		if p.queued > h2proxy.DefaultConnBuffer+connBufferSlack {
			vs = append(vs, violation{"client-queued-over-buffer", fmt.Sprintf("client connection %s: %s queued for the socket at the peak, over ConnBuffer %s (+%s slack)", client, mib(p.queued), mib(h2proxy.DefaultConnBuffer), mib(connBufferSlack))})
		}
		if lim := h2proxy.DefaultConnBuffer + int64(p.streams)*respFloorPerStream; p.granted > lim {
			vs = append(vs, violation{"client-resp-granted-over-buffer", fmt.Sprintf("client connection %s: RespGranted %s at the peak, over ConnBuffer + %d streams x %s", client, mib(p.granted), p.streams, sizeText(respFloorPerStream))})
		}
	}

	// The well-behaved clients.
	excuse := faultExcuses(actors)
	raws := map[string]bool{}
	for _, rt := range e.allRaws() {
		raws[rt.addr] = true
	}
	var unexcused, casualties []goodCall
	fromRaw := map[string]bool{}
	byTarget := map[string]int{}
	errAddrs := map[string]bool{}
	for _, c := range calls {
		rec, ok := e.obs.get(c.trace)
		if ok && raws[rec.target] {
			fromRaw[c.trace] = true
		}
		if c.err == nil {
			continue
		}
		switch {
		case ok && raws[rec.target] && excuse:
			casualties = append(casualties, c)
		default:
			unexcused = append(unexcused, c)
			where := "no l7lb record (never finished)"
			if ok {
				errAddrs[rec.target] = true
				where = e.targetName(rec.target)
				if rec.target == "" {
					where = "not forwarded"
				}
			}
			byTarget[where]++
		}
	}
	keep := func(c goodCall) bool { return true }
	if hasTargetFault(actors) {
		// A faulty target is slow or gone by design: the latency check
		// is about the calls the healthy targets served.
		keep = func(c goodCall) bool { return !fromRaw[c.trace] }
	}
	echoSt := stats(calls, func(c goodCall) bool { return c.kind == "echo" && keep(c) })
	sdkSt := stats(calls, func(c goodCall) bool { return c.kind == "sdk" && keep(c) })
	if len(actors) == 0 {
		base.echo, base.sdk, base.goroutines, base.rss = echoSt, sdkSt, gor, rss
	}
	logf("  good: echo %v (limit %v), sdk %v (limit %v); errors %d, fault casualties %d",
		echoSt, p99Limit(base.echo.p99), sdkSt, p99Limit(base.sdk.p99), len(unexcused), len(casualties))
	if len(unexcused) > 0 {
		var where []string
		for k, v := range byTarget {
			where = append(where, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(where)
		vs = append(vs, violation{"good-errors", fmt.Sprintf("%d of %d well-behaved calls failed (%s) [where: %s]%s; data path at the end of the round: %s",
			len(unexcused), len(calls), errorSummary(unexcused, 4), strings.Join(where, ", "), idleHint(e, lastFlow, errAddrs, unexcused), lastSummary)})
	}
	if len(actors) > 0 {
		// A p99 needs samples: with fewer than minSamples successful
		// calls (the clients were stuck waiting for their deadlines) the
		// round reports that instead.
		const minSamples = 100
		for _, k := range []struct {
			kind      string
			got, base latStats
		}{{"echo", echoSt, base.echo}, {"sdk", sdkSt, base.sdk}} {
			switch {
			case k.got.n < minSamples:
				vs = append(vs, violation{"good-starved", fmt.Sprintf("only %d successful %s calls in the round (baseline %d): the well-behaved clients spent it waiting", k.got.n, k.kind, k.base.n)})
			case *p99Flag && !raceEnabled && k.got.p99 > p99Limit(k.base.p99):
				vs = append(vs, violation{"good-p99-" + k.kind, fmt.Sprintf("%s p99 %v > limit %v (baseline p99 %v; %v)", k.kind, k.got.p99, p99Limit(k.base.p99), k.base.p99, k.got)})
			}
		}
	}

	// Process-wide.
	if base.goroutines > 0 && gor > base.goroutines+goroutineMargin {
		vs = append(vs, violation{"goroutines", fmt.Sprintf("%d goroutines after settling, baseline %d (+%d allowed); %s", gor, base.goroutines, goroutineMargin, lastSummary)})
	}
	if base.rss > 0 && !raceEnabled {
		if rss > base.rss+rssGrowthLimit {
			vs = append(vs, violation{"rss", fmt.Sprintf("settled RSS %s, baseline %s (+%s allowed)", mib(rss), mib(base.rss), mib(rssGrowthLimit))})
		}
		if peakRSS > base.rss+rssPeakLimit {
			vs = append(vs, violation{"rss-peak", fmt.Sprintf("peak RSS during the round %s, baseline %s (+%s allowed)", mib(peakRSS), mib(base.rss), mib(rssPeakLimit))})
		}
	}
	logf("  settled in %v: goroutines %d (baseline %d), rss %s settled / %s peak (baseline %s); targets: %s",
		settled.Round(10*time.Millisecond), gor, base.goroutines, mib(rss), mib(peakRSS), mib(base.rss), e.targetStates())
	if raceEnabled {
		logf("  (race detector: memory and latency reported, not checked)")
	}
	if len(vs) == 0 {
		logf("  OK: every invariant holds")
	} else {
		logf("  VIOLATIONS (%d):\n%s", len(vs), violationText(vs, 3))
	}
	res.violations = vs
	t.Log(strings.Join(res.lines, "\n"))
	return res
}

// idleHint explains well-behaved calls that ran into their deadline on
// targets whose connections l7lb shows idle once the round is over:
// nothing was stuck in l7lb, so the target could not answer, and the
// usual reason is a connection whose window l7lb used up without giving
// it back (for the raw target, raw-target-window counts it from the
// target's side; for the fakemilvus replicas nothing else can see it).
func idleHint(e *env, f runtime.Flow, addrs map[string]bool, errs []goodCall) string {
	deadline := false
	for _, c := range errs {
		if status.Code(c.err) == codes.DeadlineExceeded {
			deadline = true
		}
	}
	if !deadline {
		return ""
	}
	var idle []string
	for _, t := range f.Targets {
		if !addrs[t.Addr] || !strings.HasPrefix(t.Group, echoService) || t.InFlight != 0 {
			continue
		}
		busy := false
		for _, c := range t.Conns {
			busy = busy || c.Streams > 0
		}
		if !busy {
			idle = append(idle, e.targetName(t.Addr))
		}
	}
	if len(idle) == 0 {
		return ""
	}
	sort.Strings(idle)
	return fmt.Sprintf(" (calls hit their %v deadline on %s, whose connections l7lb shows idle afterwards: the target likely had no window left to answer on its connection, i.e. l7lb used it up without giving it back)", goodCallTimeout, strings.Join(idle, ", "))
}

// faultExcuses: with these target faults, calls that went to the raw
// target may fail however well l7lb does (the target is dead, frozen,
// or dropped what it had accepted).
func faultExcuses(actors []*actor) bool {
	for _, a := range actors {
		switch {
		case a.name == "t-kill", a.name == "t-freeze":
			return true
		case a.name == "t-goaway" && strings.Contains(a.params, "abrupt=true"):
			return true
		}
	}
	return false
}

func hasTargetFault(actors []*actor) bool {
	for _, a := range actors {
		if strings.HasPrefix(a.name, "t-") {
			return true
		}
	}
	return false
}

func kindsOf(vs []violation) map[string]bool {
	m := map[string]bool{}
	for _, v := range vs {
		m[strings.TrimSuffix(v.kind, " (also after the previous round)")] = true
	}
	return m
}

func sortedKinds(vs []violation) []string {
	counts := map[string]int{}
	for _, v := range vs {
		counts[v.kind]++
	}
	var out []string
	for k, n := range counts {
		out = append(out, fmt.Sprintf("%s x%d", k, n))
	}
	sort.Strings(out)
	return out
}

// violationText lists violations, at most per of each kind.
func violationText(vs []violation, per int) string {
	byKind := map[string][]violation{}
	var kinds []string
	for _, v := range vs {
		if _, ok := byKind[v.kind]; !ok {
			kinds = append(kinds, v.kind)
		}
		byKind[v.kind] = append(byKind[v.kind], v)
	}
	sort.Strings(kinds)
	var b strings.Builder
	for _, k := range kinds {
		list := byKind[k]
		for i, v := range list {
			if i == per {
				fmt.Fprintf(&b, "    %s: ... and %d more\n", k, len(list)-per)
				break
			}
			fmt.Fprintf(&b, "    %s\n", v)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}
