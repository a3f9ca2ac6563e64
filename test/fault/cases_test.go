package fault

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// TestFault runs issue 4's cases a-h, in parallel: each has its own test
// cluster and its own l7lb.
func TestFault(t *testing.T) {
	t.Run("a_kill_with_read_retry", func(t *testing.T) { t.Parallel(); caseA(t) })
	t.Run("b_not_serving", func(t *testing.T) { t.Parallel(); caseB(t) })
	t.Run("c_service_not_ready", func(t *testing.T) { t.Parallel(); caseC(t) })
	t.Run("d_removed_from_endpointslice", func(t *testing.T) { t.Parallel(); caseD(t) })
	t.Run("e_rolling_restart", func(t *testing.T) { t.Parallel(); caseE(t) })
	t.Run("f_all_down", func(t *testing.T) { t.Parallel(); caseF(t) })
	t.Run("g_sigterm", func(t *testing.T) { t.Parallel(); caseG(t) })
	t.Run("h_broken_file", func(t *testing.T) { t.Parallel(); caseH(t) })
}

// dur prints a measured duration; negative means it never happened.
func dur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

// faultOffset is when, after the load starts, the fault happens.
func faultOffset(d time.Duration) time.Duration {
	return min(max(3*time.Second, d/4), d/2)
}

var defaultLoad = loadOptions{searchers: 4, inserters: 2}

// finish stops the load and gathers the numbers every case reports.
func finish(t *testing.T, l *loadRun, be *backend, kills ...time.Time) ([]record, tally, rows) {
	l.Stop()
	recs := l.all()
	return recs, count(recs, l.started), checkRows(t, be, l.base, recs, kills...)
}

// unhealthyBound is how soon a failing replica must turn unhealthy:
// interval x unhealthy threshold.
const unhealthyBound = hcInterval * hcUnhealthy

// startInProcessUnderLoad starts what most cases need: the 3-replica
// backend (20 ms per RPC), an in-process l7lb with annotations extra, the
// collection, every target healthy, and then the default load named id.
// It returns the load duration with the rest.
func startInProcessUnderLoad(t *testing.T, id, extra string) (time.Duration, *backend, *inproc, *loadRun) {
	t.Helper()
	d := loadDuration(t)
	be := startBackend(t, 20*time.Millisecond)
	e := startInProcess(t, be, extra)
	base := setupCollection(t, e.addr, e.certs.CA.Pool())
	e.waitHealthyAll(t)
	return d, be, e, startLoad(t, id, e.addr, e.certs.CA.Pool(), base, defaultLoad)
}

// unhealthyWait is how a replica turned unhealthy after a fault: how long
// it took, whether it did within the wait, and the reason given.
type unhealthyWait struct {
	took   time.Duration
	ok     bool
	reason string
}

// waitUnhealthy waits, past unhealthyBound with room to spare, for replica
// victim to turn unhealthy after a fault at since.
func (e *inproc) waitUnhealthy(victim int, since time.Time) unhealthyWait {
	took, ok := e.waitStateSince(victim, "unhealthy", since, unhealthyBound+3*slack)
	_, reason := e.state(victim)
	return unhealthyWait{took: took, ok: ok, reason: reason}
}

// checkUnhealthyInTime checks that the replica described by what turned
// unhealthy within unhealthyBound (+slack) and with a reason, as the ALB
// gives one.
func (e *inproc) checkUnhealthyInTime(t *testing.T, what string, u unhealthyWait) {
	t.Helper()
	if u.ok && u.reason == "" {
		t.Errorf("%s replica is unhealthy without a reason; the ALB gives one (e.g. Target.FailedHealthChecks)", what)
	}
	if !u.ok || u.took > unhealthyBound+slack {
		t.Errorf("%s replica not unhealthy within interval x threshold = %v (+%v slack): seen=%v after %v; %s", what, unhealthyBound, slack, u.ok, u.took, e.states())
	}
}

func checkNoFailures(t *testing.T, ty tally) {
	t.Helper()
	if ty.failed > 0 {
		t.Errorf("%d of %d RPCs failed (%s); want 0:%s", ty.failed, ty.sent, ty, ty.failures())
	}
}

func checkRowsExact(t *testing.T, rw rows) {
	t.Helper()
	if !rw.exact() {
		t.Errorf("row count %d != rows of successful Inserts %d (+ Inserts applied by a replica as it was killed) (%s)", rw.present, rw.acked, rw)
	}
}

// a. One replica is killed abruptly, with the read retry policy on: 0
// failed reads; every Insert succeeded once or returned an error, and the
// row count equals the successful inserts exactly; the replica is
// unhealthy within interval x threshold.
func caseA(t *testing.T) {
	d, be, e, l := startInProcessUnderLoad(t, "a", hcAnnotations+"\n"+retryAnnotation)

	const victim = 1
	sleepUntil(l.started.Add(faultOffset(d)))
	inflight := be.inFlight[victim].Load()
	tKill := time.Now()
	be.replica(victim).Kill()
	u := e.waitUnhealthy(victim, tKill)
	t.Logf("killed replica-%d at +%v with %d Search/Insert in flight on it; states after %v: %s",
		victim, tKill.Sub(l.started).Round(time.Millisecond), inflight, u.took.Round(time.Millisecond), e.states())

	sleepUntil(l.started.Add(d))
	_, ty, rw := finish(t, l, be, tKill)
	report(t, "a", ty, rw, "unhealthy after %v, reason %q; %d RPCs in flight on the victim at the kill",
		u.took.Round(time.Millisecond), u.reason, inflight)
	if ty.readFails > 0 {
		t.Errorf("%d of %d reads failed with the idempotent-reads retry policy on; want 0:%s", ty.readFails, ty.reads, ty.failures())
	}
	checkRowsExact(t, rw)
	e.checkUnhealthyInTime(t, "killed", u)
}

// b. A replica turns NOT_SERVING (health answer with gRPC OK): it stops
// getting RPCs within interval x threshold, 0 failures.
func caseB(t *testing.T) {
	d, be, e, l := startInProcessUnderLoad(t, "b", hcAnnotations)

	const victim = 2
	r := be.replica(victim)
	// Sample the victim's served counter to find its last new RPC.
	var lastChange atomic.Int64
	stopSampler := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		prev := r.Served()
		lastChange.Store(time.Now().UnixNano())
		for {
			select {
			case <-stopSampler:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if v := r.Served(); v != prev {
				prev = v
				lastChange.Store(time.Now().UnixNano())
			}
		}
	}()
	sleepUntil(l.started.Add(faultOffset(d)))
	servedAtFault := r.Served()
	tFault := time.Now()
	r.SetServing(false)
	u := e.waitUnhealthy(victim, tFault)
	t.Logf("replica-%d NOT_SERVING at +%v; states after %v: %s", victim, tFault.Sub(l.started).Round(time.Millisecond), u.took.Round(time.Millisecond), e.states())

	// Back to SERVING: healthy again within interval x healthy threshold.
	sleepUntil(l.started.Add(max(3*d/4, tFault.Sub(l.started)+unhealthyBound+2*time.Second)))
	close(stopSampler)
	<-samplerDone
	last := time.Unix(0, lastChange.Load())
	stoppedAfter := last.Sub(tFault)
	afterFault := r.Served() - servedAtFault
	tBack := time.Now()
	r.SetServing(true)
	healthyBound := hcInterval * hcHealthy
	backTook, backOK := e.waitStateSince(victim, "healthy", tBack, healthyBound+3*slack)
	servedAtBack := r.Served()
	sleepUntil(l.started.Add(max(d, time.Since(l.started)+2*time.Second)))
	servedAfterBack := r.Served() - servedAtBack
	_, ty, rw := finish(t, l, be)
	t.Logf("SERVING again: healthy after %v, then served %d RPCs", backTook.Round(time.Millisecond), servedAfterBack)
	if !backOK || backTook > healthyBound+slack {
		t.Errorf("replica not healthy %v after it turned SERVING again; want within interval x healthy threshold = %v (+%v): %s", backTook, healthyBound, slack, e.states())
	}
	if servedAfterBack == 0 {
		t.Errorf("replica got no RPC in the 2s after it was healthy again")
	}
	report(t, "b", ty, rw, "victim served %d RPCs after NOT_SERVING, the last %v after it; unhealthy after %v, reason %q",
		afterFault, stoppedAfter.Round(time.Millisecond), u.took.Round(time.Millisecond), u.reason)
	checkNoFailures(t, ty)
	checkRowsExact(t, rw)
	if stoppedAfter > unhealthyBound+slack {
		t.Errorf("NOT_SERVING replica still got RPCs %v after the change; want none after interval x threshold = %v (+%v slack)", stoppedAfter, unhealthyBound, slack)
	}
	e.checkUnhealthyInTime(t, "NOT_SERVING", u)
}

// c. A replica answers ServiceNotReady (in the body, gRPC OK): its RPCs
// are retried elsewhere, 0 failures.
func caseC(t *testing.T) {
	d, be, e, l := startInProcessUnderLoad(t, "c", hcAnnotations)

	const victim = 0
	sleepUntil(l.started.Add(faultOffset(d)))
	handledAtFault := be.handled[victim].Load()
	tFault := time.Now()
	be.replica(victim).SetNotReady(true)
	sleepUntil(l.started.Add(d))
	st, reason := e.state(victim)
	_, ty, rw := finish(t, l, be)
	bounced := be.handled[victim].Load() - handledAtFault
	report(t, "c", ty, rw, "victim answered ServiceNotReady to %d RPCs after +%v; its state at the end %s %q",
		bounced, tFault.Sub(l.started).Round(time.Millisecond), st, reason)
	checkNoFailures(t, ty)
	checkRowsExact(t, rw)
	if bounced == 0 {
		t.Errorf("the ServiceNotReady replica got no RPC after the change; the case did not exercise the retry")
	}
}

// d. A replica is removed from the EndpointSlice file (l7lb as its own
// process, reloading on the file change): 0 failures, its in-flight RPCs
// complete, it gets no new RPCs.
func caseD(t *testing.T) {
	d := loadDuration(t)
	be := startBackend(t, 20*time.Millisecond)
	const victim = 2
	be.delay[victim].Store(int64(300 * time.Millisecond)) // RPCs in flight on it at the removal
	p := startProcess(t, be, procOptions{extra: hcAnnotations + "\n" + `    alb.ingress.kubernetes.io/target-group-attributes: deregistration_delay.timeout_seconds=10`, slices: true})
	base := setupCollection(t, p.addr, p.certs.CA.Pool())
	l := startLoad(t, "d", p.addr, p.certs.CA.Pool(), base, defaultLoad)

	sleepUntil(l.started.Add(faultOffset(d)))
	if be.handled[victim].Load() == 0 {
		t.Errorf("replica-%d got no RPC before its removal (EndpointSlice targets not used?)", victim)
	}
	logOff := p.logs.Len()
	inflight := be.inFlight[victim].Load()
	tFault := time.Now()
	writeFileAtomic(t, p.slicesFile, endpointSlicesYAML(be.addrMap(victim)))

	// The victim has stopped getting RPCs once its counter holds still for
	// longer than its delay plus a margin.
	stable := func(limit time.Duration) (time.Time, bool) {
		prev, last := be.handled[victim].Load(), time.Now()
		for time.Since(tFault) < limit {
			time.Sleep(50 * time.Millisecond)
			if v := be.handled[victim].Load(); v != prev {
				prev, last = v, time.Now()
			} else if time.Since(last) > 2*time.Second {
				return last, true
			}
		}
		return last, false
	}
	last, ok := stable(12 * time.Second)
	viaSIGHUP := false
	if !ok {
		t.Errorf("replica-%d still got new RPCs 12s after it was removed from %s (file change not reloaded?); sending SIGHUP", victim, p.slicesFile)
		viaSIGHUP = true
		p.cmd.Process.Signal(syscall.SIGHUP) //nolint:errcheck // checked below by the counter
		last, ok = stable(24 * time.Second)
		if !ok {
			t.Errorf("replica-%d still got new RPCs after SIGHUP too", victim)
		}
	}
	lastNew := last.Sub(tFault)
	for i := 0; i < 100 && be.inFlight[victim].Load() > 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	leftInFlight := be.inFlight[victim].Load()
	if _, body, err := p.adminGet("/api/v1/targetgroups"); err == nil {
		var groups []struct {
			Targets []struct {
				Address, State, Reason string
				InFlight               int64
			}
		}
		if json.Unmarshal([]byte(body), &groups) == nil {
			var ts []string
			for _, g := range groups {
				for _, x := range g.Targets {
					ts = append(ts, fmt.Sprintf("%s %s %q inFlight=%d", x.Address, x.State, x.Reason, x.InFlight))
				}
			}
			t.Logf("admin targets after the removal (victim %s): %s", be.cluster.Addrs()[victim], strings.Join(ts, "; "))
		}
	}
	// No new RPC may reach the victim once the new configuration is in.
	if line, ok := p.logs.waitLine(logOff, time.Second, func(s string) bool { return strings.Contains(s, "configuration reloaded") }); ok {
		if i := strings.Index(line, "time="); i >= 0 {
			if ts, err := time.Parse(time.RFC3339Nano, strings.Fields(line[i+5:])[0]); err == nil {
				reloadAfter := ts.Sub(tFault)
				t.Logf("reload applied %v after the file change; victim's last new RPC %v after the change", reloadAfter.Round(time.Millisecond), lastNew.Round(time.Millisecond))
				if lastNew > reloadAfter+100*time.Millisecond {
					t.Errorf("the removed replica got a new RPC %v after the reload was applied", lastNew-reloadAfter)
				}
			}
		}
	} else {
		t.Errorf("no \"configuration reloaded\" line after the EndpointSlice change")
	}
	reloadLines := p.logs.linesSince(logOff, nil)
	sleepUntil(l.started.Add(max(d, tFault.Sub(l.started)+3*time.Second)))
	// Still serving after the change.
	_, ty, rw := finish(t, l, be)
	report(t, "d", ty, rw, "%d RPCs in flight on the removed replica at the change, %d left after; its last new RPC %v after the change%s",
		inflight, leftInFlight, lastNew.Round(time.Millisecond), map[bool]string{true: ", needed SIGHUP", false: ""}[viaSIGHUP])
	t.Logf("l7lb log after the change:\n%s", tail(strings.Join(reloadLines, "\n"), 15))
	checkNoFailures(t, ty)
	checkRowsExact(t, rw)
	if inflight == 0 {
		t.Logf("note: no RPC was in flight on the victim at the change; in-flight completion not exercised this run")
	}
	if leftInFlight != 0 {
		t.Errorf("%d RPCs still in flight on the removed replica 5s after it stopped getting new ones", leftInFlight)
	}
	if !p.running() {
		t.Errorf("l7lb exited: %v\n%s", p.exitErr, tail(p.logs.String(), 20))
	}
}

// e. The three replicas restart one after another (graceful stop, as a
// Kubernetes rolling restart does, then back on the same address): 0
// failures.
func caseE(t *testing.T) {
	d, be, e, l := startInProcessUnderLoad(t, "e", hcAnnotations)

	sleepUntil(l.started.Add(min(3*time.Second, faultOffset(d))))
	var steps []string
	for i := 0; i < replicas; i++ {
		t0 := time.Now()
		transitions := e.watchState(i, t0)
		be.replica(i).Stop()
		stopped := time.Since(t0)
		time.Sleep(time.Second)
		if err := be.replica(i).Restart(); err != nil {
			t.Fatalf("restart replica-%d: %v", i, err)
		}
		t1 := time.Now()
		handled := be.handled[i].Load()
		// Like a Deployment's rolling update: the next replica goes once
		// this one is up and has had time to pass its checks (interval x
		// healthy threshold); l7lb's view (healthy, or still ejected by
		// outlier detection) is recorded, not waited for.
		back, healthy := time.Duration(-1), time.Duration(-1)
		for time.Since(t1) < hcInterval*hcHealthy+time.Second {
			if back < 0 && be.handled[i].Load() > handled {
				back = time.Since(t1)
			}
			if s, _ := e.state(i); healthy < 0 && s == "healthy" {
				healthy = time.Since(t1)
			}
			time.Sleep(20 * time.Millisecond)
		}
		st, reason := e.state(i)
		t.Logf("replica-%d state changes (from its stop; restart at +%v): %s", i, t1.Sub(t0).Round(time.Millisecond), transitions())
		steps = append(steps, fmt.Sprintf("replica-%d: graceful stop %v, after restart healthy at %s, traffic back at %s, state at next step %s %q",
			i, stopped.Round(time.Millisecond), dur(healthy), dur(back), st, reason))
		time.Sleep(500 * time.Millisecond)
	}
	sleepUntil(l.started.Add(d))
	_, ty, rw := finish(t, l, be)
	report(t, "e", ty, rw, "%s", strings.Join(steps, "; "))
	checkNoFailures(t, ty)
	checkRowsExact(t, rw)
}

// f. All replicas down: RPCs fail fast with UNAVAILABLE naming the target
// group; when they return, traffic resumes within interval x healthy
// threshold.
func caseF(t *testing.T) {
	d, be, e, l := startInProcessUnderLoad(t, "f", hcAnnotations)
	group := e.group()

	sleepUntil(l.started.Add(faultOffset(d)))
	tDown := time.Now()
	for i := 0; i < replicas; i++ {
		be.replica(i).Kill()
	}
	tKilled := time.Now()
	outage := hcInterval*hcUnhealthy + 2*time.Second
	time.Sleep(outage)
	statesDown := e.states()
	logOff := e.logs.Len()
	tBack := time.Now()
	for i := 0; i < replicas; i++ {
		if err := be.replica(i).Restart(); err != nil {
			t.Fatalf("restart replica-%d: %v", i, err)
		}
	}
	sleepUntil(l.started.Add(max(d, tBack.Sub(l.started)+hcInterval*hcHealthy+4*time.Second)))
	recs, ty, rw := finish(t, l, be, tDown, tKilled)

	var before, during, after []record
	var resumed time.Time
	for _, r := range recs {
		switch {
		case r.end.Before(tDown):
			before = append(before, r)
		case r.start.Before(tBack):
			during = append(during, r)
		default:
			after = append(after, r)
			if r.err == nil && (resumed.IsZero() || r.end.Before(resumed)) {
				resumed = r.end
			}
		}
	}
	// Failures of RPCs sent while everything was down.
	var fails, notUnavailable, unnamed, slow int
	var maxFail time.Duration
	var sample string
	for _, r := range during {
		if r.err == nil || r.start.Before(tKilled) {
			continue
		}
		fails++
		took := r.end.Sub(r.start)
		maxFail = max(maxFail, took)
		if codeOf(r.err) != codes.Unavailable {
			notUnavailable++
		}
		if !strings.Contains(r.err.Error(), group) {
			unnamed++
		}
		if took > time.Second {
			slow++
		}
		if sample == "" {
			sample = r.err.Error()
		}
	}
	resumeAfter := time.Duration(-1)
	if !resumed.IsZero() {
		resumeAfter = resumed.Sub(tBack)
	}
	// After traffic resumed (plus a second), nothing may fail.
	var lateFails []record
	for _, r := range after {
		if r.err != nil && !resumed.IsZero() && r.start.After(resumed.Add(time.Second)) {
			lateFails = append(lateFails, r)
		}
	}
	tyBefore := count(before, l.started)
	report(t, "f", ty, rw, "outage %v: %d RPCs failed, max %v, %d not UNAVAILABLE, %d not naming %q; resumed %s after the replicas returned; %d failures after resuming",
		tBack.Sub(tDown).Round(time.Millisecond), fails, maxFail.Round(time.Millisecond), notUnavailable, unnamed, group, dur(resumeAfter), len(lateFails))
	t.Logf("states while down: %s; sample failure: %s", statesDown, sample)
	t.Logf("l7lb log around the outage:\n%s", tail(strings.Join(e.logs.linesSince(0, func(s string) bool {
		return !strings.Contains(s, "level=DEBUG")
	}), "\n"), 12))
	_ = logOff
	if tyBefore.failed > 0 {
		t.Errorf("%d RPCs failed before the outage:%s", tyBefore.failed, tyBefore.failures())
	}
	if fails == 0 {
		t.Errorf("no RPC failed while every replica was down")
	}
	if notUnavailable > 0 || unnamed > 0 {
		t.Errorf("of %d failures during the outage, %d were not UNAVAILABLE and %d did not name the target group %q; e.g. %s", fails, notUnavailable, unnamed, group, sample)
	}
	if slow > 0 {
		t.Errorf("%d failures during the outage took over 1s (max %v); want fail fast", slow, maxFail)
	}
	if bound := hcInterval * hcHealthy; resumeAfter < 0 || resumeAfter > bound+slack {
		t.Errorf("traffic resumed %v after the replicas returned; want within interval x healthy threshold = %v (+%v)", resumeAfter, bound, slack)
	}
	if len(lateFails) > 0 {
		lt := count(lateFails, l.started)
		t.Errorf("%d RPCs failed after traffic resumed:%s", len(lateFails), lt.failures())
	}
	checkRowsExact(t, rw)
}

// g. l7lb (its own process) gets SIGTERM under load: every in-flight RPC
// completes, exit 0.
func caseG(t *testing.T) {
	d := loadDuration(t)
	be := startBackend(t, 150*time.Millisecond)
	drain := 10 * time.Second
	p := startProcess(t, be, procOptions{extra: hcAnnotations, drain: drain})
	base := setupCollection(t, p.addr, p.certs.CA.Pool())
	l := startLoad(t, "g", p.addr, p.certs.CA.Pool(), base, loadOptions{searchers: 8, inserters: 4})

	sleepUntil(l.started.Add(d))
	// /readyz must turn not-ready first (issue: before no new connections).
	code0, _, _ := p.adminGet("/readyz")
	var notReadyAt atomic.Int64 // ns after SIGTERM of the first non-200 answer
	var readyzAnswered503 atomic.Bool
	readyzDone := make(chan struct{})
	var tSig time.Time
	sigSent := make(chan struct{})
	go func() {
		defer close(readyzDone)
		<-sigSent
		for i := 0; i < 2000 && p.running(); i++ {
			code, _, err := p.adminGet("/readyz")
			if err != nil || code != 200 {
				notReadyAt.Store(int64(time.Since(tSig)))
				readyzAnswered503.Store(err == nil && code == 503)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	backendInFlight := be.inFlight[0].Load() + be.inFlight[1].Load() + be.inFlight[2].Load()
	tSig = time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // checked by the exit
	close(sigSent)
	exitedIn := time.Duration(-1)
	select {
	case <-p.exited:
		exitedIn = time.Since(tSig)
	case <-time.After(drain + 10*time.Second):
	}
	<-readyzDone
	recs, ty, rw := finish(t, l, be)
	var firstRefused time.Duration = -1
	for _, r := range recs {
		if !r.start.Before(tSig) && r.err != nil && (firstRefused < 0 || r.end.Sub(tSig) < firstRefused) {
			firstRefused = r.end.Sub(tSig)
		}
	}
	t.Logf("/readyz: %d before SIGTERM; first not-ready answer %v after it (503=%v); first client RPC refused %s after it",
		code0, time.Duration(notReadyAt.Load()).Round(time.Microsecond), readyzAnswered503.Load(), dur(firstRefused))
	if p.admin != "" && !readyzAnswered503.Load() {
		t.Errorf("/readyz never answered 503 between SIGTERM and exit (issue: the readiness endpoint turns not-ready first)")
	}
	var inflight, inflightFailed, beforeFailed, afterSent, afterFailed int
	var samples []string
	for _, r := range recs {
		if r.start.Before(tSig) {
			if r.end.After(tSig) {
				inflight++
			}
			if r.err != nil {
				beforeFailed++
				if r.end.After(tSig) {
					inflightFailed++
				}
				if len(samples) < 5 {
					samples = append(samples, fmt.Sprintf("%s started %v before SIGTERM, ended %v after: %v", r.op, tSig.Sub(r.start).Round(time.Millisecond), r.end.Sub(tSig).Round(time.Millisecond), r.err))
				}
			}
		} else {
			afterSent++
			if r.err != nil {
				afterFailed++
			}
		}
	}
	exitCode := -1
	if p.cmd.ProcessState != nil {
		exitCode = p.cmd.ProcessState.ExitCode()
	}
	report(t, "g", ty, rw, "%d client RPCs / %d backend handlers in flight at SIGTERM, %d of them failed; %d RPCs begun before SIGTERM failed; %d sent after SIGTERM (%d refused, expected); exit %d after %s",
		inflight, backendInFlight, inflightFailed, beforeFailed, afterSent, afterFailed, exitCode, dur(exitedIn))
	t.Logf("l7lb log after SIGTERM:\n%s", tail(p.logs.String(), 10))
	if beforeFailed > 0 {
		t.Errorf("%d RPCs begun before SIGTERM failed (%d of them in flight at the signal); want 0:\n    %s", beforeFailed, inflightFailed, strings.Join(samples, "\n    "))
	}
	if inflight == 0 {
		t.Errorf("no RPC in flight at SIGTERM; the case did not exercise draining")
	}
	if exitedIn < 0 {
		t.Errorf("l7lb did not exit within drain timeout %v + 10s", drain)
	} else if exitCode != 0 {
		t.Errorf("l7lb exit code %d after SIGTERM, want 0 (%v)", exitCode, p.exitErr)
	}
	checkRowsExact(t, rw)
}

// h. A broken file is written during load: the old configuration keeps
// serving, the error is logged (file change and SIGHUP). Then a good file
// is taken, and health state survives that reload.
func caseH(t *testing.T) {
	d := loadDuration(t)
	be := startBackend(t, 20*time.Millisecond)
	p := startProcess(t, be, procOptions{extra: hcAnnotations})
	addrBefore, _ := os.ReadFile(p.addrFile)
	base := setupCollection(t, p.addr, p.certs.CA.Pool())
	l := startLoad(t, "h", p.addr, p.certs.CA.Pool(), base, defaultLoad)

	isProblem := func(key string) func(string) bool {
		return func(s string) bool {
			return (strings.Contains(s, "level=ERROR") || strings.Contains(s, "level=WARN")) && strings.Contains(s, key)
		}
	}
	// 1: a bad annotation value, noticed through the file change.
	sleepUntil(l.started.Add(d / 4))
	off1 := p.logs.Len()
	bad1 := strings.Replace(p.ingressText, `healthcheck-interval-seconds: "2"`, `healthcheck-interval-seconds: "0"`, 1)
	writeFileAtomic(t, p.ingressFile, bad1)
	line1, ok1 := p.logs.waitLine(off1, 10*time.Second, isProblem("healthcheck-interval-seconds"))
	if _, body, err := p.adminGet("/api/v1/reload"); err == nil {
		t.Logf("/api/v1/reload after the bad value: %s", body)
	}
	// 2: not YAML at all, then SIGHUP.
	sleepUntil(l.started.Add(d / 2))
	off2 := p.logs.Len()
	writeFileAtomic(t, p.ingressFile, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: [broken\n")
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGHUP) //nolint:errcheck // checked below
	}
	line2, ok2 := p.logs.waitLine(off2, 10*time.Second, isProblem("ingress.yaml"))
	if _, body, err := p.adminGet("/api/v1/reload"); err == nil {
		t.Logf("/api/v1/reload after broken YAML + SIGHUP: %s", body)
	}
	// 3: good files again: accepted, and the targets that stay keep their
	// health state (healthy, not initial) - first a listener-only change
	// (idle timeout), then a changed health-check interval.
	goodReload := func(label, content string) {
		off := p.logs.Len()
		writeFileAtomic(t, p.ingressFile, content)
		line, ok := p.logs.waitLine(off, 10*time.Second, func(s string) bool { return strings.Contains(s, "configuration reloaded") })
		if !ok {
			t.Errorf("%s: not reloaded within 10s; log since:\n%s", label, tail(strings.Join(p.logs.linesSince(off, nil), "\n"), 10))
			return
		}
		_, body, err := p.adminGet("/api/v1/targetgroups")
		if err != nil {
			return
		}
		var groups []struct {
			Targets []struct{ Address, State, Reason string }
		}
		if json.Unmarshal([]byte(body), &groups) != nil {
			return
		}
		var states []string
		bad := 0
		for _, g := range groups {
			for _, x := range g.Targets {
				states = append(states, x.Address+"="+x.State)
				if x.State != "healthy" {
					bad++
				}
			}
		}
		t.Logf("%s: %s; targets right after: %s", label, line, strings.Join(states, " "))
		if bad > 0 {
			t.Errorf("%s: %d targets not healthy right after a reload that kept them (%s); issue: health state of targets that stay survives a reload",
				label, bad, strings.Join(states, " "))
		}
		time.Sleep(hcInterval * hcHealthy) // let checks settle before the next step
	}
	sleepUntil(l.started.Add(3 * d / 4))
	idle := strings.Replace(p.ingressText, "{{NOTHING}}", "", 1)
	idle = strings.Replace(idle, `    alb.ingress.kubernetes.io/scheme: internet-facing`,
		"    alb.ingress.kubernetes.io/scheme: internet-facing\n    alb.ingress.kubernetes.io/load-balancer-attributes: idle_timeout.timeout_seconds=120", 1)
	goodReload("reload with a listener-only change", idle)
	goodReload("reload with healthcheck-interval-seconds 2 -> 3", strings.Replace(idle, `healthcheck-interval-seconds: "2"`, `healthcheck-interval-seconds: "3"`, 1))
	sleepUntil(l.started.Add(max(d, time.Since(l.started)+2*time.Second)))
	stillRunning := p.running()
	addrAfter, _ := os.ReadFile(p.addrFile)
	_, ty, rw := finish(t, l, be)
	report(t, "h", ty, rw, "bad value logged=%v, broken YAML + SIGHUP logged=%v, still running=%v",
		ok1, ok2, stillRunning)
	t.Logf("refusal lines:\n  %s\n  %s", line1, line2)
	checkNoFailures(t, ty)
	checkRowsExact(t, rw)
	if !ok1 {
		t.Errorf("no ERROR/WARN line naming healthcheck-interval-seconds within 10s of writing the bad value; log since:\n%s", tail(strings.Join(p.logs.linesSince(off1, nil), "\n"), 15))
	}
	if !ok2 {
		t.Errorf("no ERROR/WARN line naming ingress.yaml within 10s of writing broken YAML and SIGHUP; log since:\n%s", tail(strings.Join(p.logs.linesSince(off2, nil), "\n"), 15))
	}
	if !stillRunning {
		t.Errorf("l7lb exited (%v):\n%s", p.exitErr, tail(p.logs.String(), 20))
	}
	if string(addrBefore) != string(addrAfter) {
		t.Errorf("listener addresses changed: %s -> %s", addrBefore, addrAfter)
	}
}
