//go:build linux

package e2e

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/runtime"
)

// replicaProcessEnv makes the test binary, run again by
// startReplicaProcess, a one-replica fakemilvus process.
const replicaProcessEnv = "L7LB_E2E_REPLICA_PROCESS"

// TestBalanceReplicaProcess is not a test: it is the body of the replica
// process that startReplicaProcess runs (the test binary again), and
// skips otherwise.
func TestBalanceReplicaProcess(t *testing.T) {
	if os.Getenv(replicaProcessEnv) != "1" {
		t.Skip("the replica process of TestBalanceHungReplica")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(fakemilvus.Command(ctx, []string{"--replicas=1", "--base-port=0", "--control=127.0.0.1:0", "--stop-grace=1s"}, os.Stdout, os.Stderr))
}

// replicaProcess is one fakemilvus replica in a process of its own, so
// that SIGSTOP freezes it as a stopped or paused Milvus proxy: the kernel
// still accepts and acknowledges its TCP connections, and nothing answers.
type replicaProcess struct {
	cmd  *exec.Cmd
	addr string
	ctl  *fakemilvus.ControlClient
}

func startReplicaProcess(t *testing.T) *replicaProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBalanceReplicaProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), replicaProcessEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr lbtest.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		// Never leave it stopped, then stop it gracefully, or kill it.
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the test no longer reads: drop
			}
		}
		close(lines)
		_ = cmd.Wait()
		close(exited)
	}()
	p := &replicaProcess{cmd: cmd}
	timeout := time.After(30 * time.Second)
	for p.addr == "" || p.ctl == nil {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("replica process ended before it said where it listens; stderr:\n%s", stderr.String())
			}
			switch f := strings.Fields(l); {
			case len(f) == 2 && f[0] == "replica-0":
				p.addr = f[1]
			case len(f) == 2 && f[0] == "control":
				p.ctl = fakemilvus.NewControlClient(f[1], nil)
			}
		case <-timeout:
			t.Fatalf("replica process did not say where it listens within 30 s; stderr:\n%s", stderr.String())
		}
	}
	return p
}

func (p *replicaProcess) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v: %v", sig, err)
	}
}

// targetStatus returns l7lb's view of the seed group's target at addr.
func targetStatus(e *env, addr string) (runtime.TargetStatus, bool) {
	for _, g := range e.rt.Status().Groups {
		for _, tg := range g.Targets {
			if tg.Address == addr {
				return tg, true
			}
		}
	}
	return runtime.TargetStatus{}, false
}

// call is one SDK call's start and outcome.
type call struct {
	start time.Time
	err   error
}

// TestBalanceHungReplica: under round robin, one of three replicas is
// frozen with SIGSTOP while 8 goroutines send SDK calls with 2 s
// deadlines. l7lb sees it hold requests and answer nothing, not even a
// PING, and takes it out: it gets no new calls within 2 s of the freeze.
// Calls sent from then on all succeed on the two others; the only calls
// that fail are those l7lb had sent to it, and they fail by their
// deadline. The replica is resumed at the end.
//
// Round robin sends each worker there within a few calls, so until those
// calls' deadlines all 8 workers wait on the frozen replica: the calls
// are left to finish or time out (a pause that ends in time costs no
// RPC), and new calls resume when they time out, about 2 s after the
// freeze, by when the replica must be out of rotation.
func TestBalanceHungReplica(t *testing.T) {
	const (
		deadline = 2 * time.Second
		// The freeze lasts this long; calls keep going throughout.
		frozenFor = 4 * time.Second
		// Within this of the freeze, the frozen replica gets no new calls.
		cutoff = 2 * time.Second
	)
	proc := startReplicaProcess(t)
	cl, err := fakemilvus.Start(fakemilvus.Options{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e := startEnv(t, envOptions{
		extraAnnotations: healthAnnotations,
		endpoints:        lbtest.Endpoints(cl.Addrs()[0], cl.Addrs()[1], proc.addr),
	})
	if a := e.rt.Group(seedGroup).Algorithm(); a != "round_robin" {
		t.Fatalf("target group runs %s, want round_robin", a)
	}
	for _, a := range []string{cl.Addrs()[0], cl.Addrs()[1], proc.addr} {
		waitState(t, e, a, "healthy", 6*time.Second)
	}
	ctx := ctxT(t, 30*time.Second)
	c, err := demo.Connect(ctx, e.addr, serverName, e.ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })

	// The calls: HasCollection (the two engines, in-process and in the
	// replica process, know different collections; none knows "hung").
	stop := make(chan struct{})
	var mu sync.Mutex
	var calls []call
	var total atomic.Int64
	var wg sync.WaitGroup
	for range balanceWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Add(1) <= 50000 {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				cctx, cancel := context.WithTimeout(context.Background(), deadline)
				has, err := c.HasCollection(cctx, milvusclient.NewHasCollectionOption("hung"))
				cancel()
				if err == nil && has {
					err = errors.New("HasCollection(hung) = true")
				}
				mu.Lock()
				calls = append(calls, call{start, err})
				mu.Unlock()
			}
		}()
	}
	stopCalls := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopCalls)

	// Warm-up: the replica process gets its third.
	time.Sleep(500 * time.Millisecond)
	before, _ := targetStatus(e, proc.addr)
	if before.Served == 0 {
		t.Fatalf("the replica process got no calls in the warm-up: %+v", before)
	}

	frozeAt := time.Now()
	proc.signal(t, syscall.SIGSTOP)
	resumed := false
	defer func() {
		if !resumed {
			_ = proc.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	// Watch l7lb's count of calls sent to it, and its state.
	last := before
	lastChange := frozeAt
	var outAt time.Time
	var outReason string
	var atCutoff uint64
	cutoffSeen := false
	for time.Since(frozeAt) < frozenFor {
		st, _ := targetStatus(e, proc.addr)
		now := time.Now()
		if st.Served != last.Served {
			lastChange = now
		}
		if outAt.IsZero() && st.State != "healthy" {
			outAt, outReason = now, st.State+": "+st.Reason
		}
		if !cutoffSeen && now.Sub(frozeAt) >= cutoff {
			atCutoff, cutoffSeen = st.Served, true
		}
		last = st
		time.Sleep(10 * time.Millisecond)
	}
	stopCalls()
	after, _ := targetStatus(e, proc.addr)

	// Resume it, and see that it answers again.
	proc.signal(t, syscall.SIGCONT)
	resumed = true
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	rs, rerr := proc.ctl.Replica(rctx, 0)
	rcancel()

	mu.Lock()
	defer mu.Unlock()
	var okBeforeCutoff, okAfterCutoff, failed, late int
	var codesSeen []string
	for _, k := range calls {
		if k.err == nil {
			switch d := k.start.Sub(frozeAt); {
			case d >= cutoff:
				okAfterCutoff++
			case d >= 0:
				okBeforeCutoff++
			}
			continue
		}
		failed++
		codesSeen = append(codesSeen, status.Code(k.err).String())
		if status.Code(k.err) != codes.DeadlineExceeded {
			t.Errorf("a call failed with %v, want DEADLINE_EXCEEDED (held on the frozen replica): %v", status.Code(k.err), k.err)
		}
		if k.start.Sub(frozeAt) >= cutoff {
			late++
		}
	}
	sentToFrozen := int64(after.Served-before.Served) + before.InFlight
	t.Logf("frozen at +0; out of rotation at +%v (%s); last call sent to it at +%v; l7lb sent it %d calls after the freeze (%d held at the freeze)",
		outAt.Sub(frozeAt).Round(time.Millisecond), outReason, lastChange.Sub(frozeAt).Round(time.Millisecond), after.Served-before.Served, before.InFlight)
	t.Logf("%d calls, %d failed (%v); of the calls started after the freeze, %d succeeded before +%v and %d from then on", len(calls), failed, codesSeen, okBeforeCutoff, cutoff, okAfterCutoff)
	if rerr != nil {
		t.Errorf("replica process does not answer after SIGCONT: %v", rerr)
	} else {
		t.Logf("after SIGCONT the replica process reports %d served RPCs", rs.Served)
	}

	if outAt.IsZero() || outAt.Sub(frozeAt) > cutoff {
		t.Errorf("frozen replica not out of rotation within %v (state %s: %s)", cutoff, after.State, after.Reason)
	} else if !strings.Contains(outReason, "answered nothing") {
		t.Errorf("frozen replica out for %q, want the hang (\"answered nothing, not even a PING\")", outReason)
	}
	if d := lastChange.Sub(frozeAt); d > cutoff {
		t.Errorf("frozen replica still got a new call %v after the freeze, want none after %v", d.Round(time.Millisecond), cutoff)
	}
	if !cutoffSeen || after.Served != atCutoff {
		t.Errorf("frozen replica got %d new calls between +%v and +%v", after.Served-atCutoff, cutoff, frozenFor)
	}
	if late > 0 {
		t.Errorf("%d calls started %v or more after the freeze failed; all should go to the two others", late, cutoff)
	}
	if int64(failed) > sentToFrozen {
		t.Errorf("%d calls failed, but l7lb sent only %d to the frozen replica", failed, sentToFrozen)
	}
	// The two others serve the calls: at least a few hundred in the two
	// seconds from the cutoff to the end of the freeze.
	if okAfterCutoff < 200 {
		t.Errorf("only %d calls succeeded in the %v after the cutoff", okAfterCutoff, frozenFor-cutoff)
	}
}
