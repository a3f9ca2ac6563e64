package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus"
)

// seedGroup is the seed Ingress's target group.
const seedGroup = "milvus/milvus-demo:19530"

const (
	// balanceWorkers is the number of SDK goroutines sending calls.
	balanceWorkers = 8
	// slowLatency is what the slowed replica adds to every reply. Under
	// -race on two shared cores, with the SDK, l7lb and the replicas in
	// one process, l7lb measures the other replicas at 5-15 ms a reply
	// (time to first answer), so 30 ms made the slowed one only 2-6 times
	// slower and peak_ewma gave it 0.5-2.7 % (5 of 10 runs over 2 %); at
	// 100 ms it is 7-20 times slower.
	slowLatency = 100 * time.Millisecond
	// slowIdx is the slowed replica.
	slowIdx = 1
)

// balanceRig is three replicas behind l7lb with a small loaded collection
// and an SDK client.
type balanceRig struct {
	e      *env
	c      *milvusclient.Client
	search milvusclient.SearchOption
}

// startBalanceRig starts l7lb with the extra annotations (lines indented
// as under metadata.annotations), checks that the seed's target group
// runs want, and sets up a small collection through the SDK.
func startBalanceRig(t *testing.T, annotations string, want config.Algorithm) *balanceRig {
	t.Helper()
	e := startEnv(t, envOptions{extraAnnotations: annotations})
	g := e.rt.Group(seedGroup)
	if g == nil {
		t.Fatalf("no target group %s", seedGroup)
	}
	if got := g.Algorithm(); got != want {
		t.Fatalf("target group runs %s, want %s", got, want)
	}
	ctx := ctxT(t, 30*time.Second)
	c, err := demo.Connect(ctx, e.addr, serverName, e.ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	// Create, insert, index, load and search: the collection the calls
	// below search, set up while every replica is fast.
	rep, err := demo.Session{Collection: "bal", Rows: 64, Dim: 8, TopK: 5, Queries: 2, Seed: 7}.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SearchHitsOK != 2 {
		t.Fatalf("setup session: %+v", rep)
	}
	q := []float32{0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8}
	return &balanceRig{e: e, c: c, search: milvusclient.NewSearchOption("bal", 5, []entity.Vector{entity.FloatVector(q)}).WithANNSField("vector")}
}

// window is what the replicas served during one bounded run of calls.
type window struct {
	served  []int64 // per replica, from the replicas' own counters
	total   int64
	calls   int64 // SDK calls made
	failed  int64
	elapsed time.Duration
}

func (w window) share(i int) float64 {
	if w.total == 0 {
		return 0
	}
	return float64(w.served[i]) / float64(w.total)
}

func (w window) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls in %v:", w.calls, w.elapsed.Round(time.Millisecond))
	for i, n := range w.served {
		fmt.Fprintf(&b, " replica-%d %d (%.1f%%)", i, n, 100*w.share(i))
	}
	if w.failed > 0 {
		fmt.Fprintf(&b, "; %d failed", w.failed)
	}
	return b.String()
}

// run sends SDK Search calls from balanceWorkers goroutines until n calls
// are made or limit has passed, whichever comes first, and reports what
// each replica served meanwhile. A failed call fails the test.
func (r *balanceRig) run(t *testing.T, n int64, limit time.Duration) window {
	t.Helper()
	before := r.e.served()
	start := time.Now()
	deadline := start.Add(limit)
	var next, done, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range balanceWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n && time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				rs, err := r.c.Search(ctx, r.search)
				cancel()
				if err == nil && (len(rs) != 1 || rs[0].ResultCount != 5) {
					err = fmt.Errorf("search answered %d result sets (first with %d hits), want 1 with 5", len(rs), firstCount(rs))
				}
				done.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	w := window{calls: done.Load(), failed: failed.Load(), elapsed: time.Since(start)}
	for i, a := range r.e.served() {
		w.served = append(w.served, a-before[i])
		w.total += a - before[i]
	}
	if p := firstErr.Load(); p != nil {
		t.Fatalf("%d of %d calls failed, first: %v", w.failed, w.calls, *p)
	}
	return w
}

func firstCount(rs []milvusclient.ResultSet) int {
	if len(rs) == 0 {
		return 0
	}
	return rs[0].ResultCount
}

// pollShare runs windows of calls until done(share of the slowed replica)
// holds or within has passed, and returns the windows it ran and whether
// done held. Each window is bounded by count and time.
func (r *balanceRig) pollShare(t *testing.T, within time.Duration, done func(float64) bool) (ws []window, ok bool, took time.Duration) {
	t.Helper()
	start := time.Now()
	for i := 0; i < 100 && time.Since(start) < within; i++ {
		w := r.run(t, 150, time.Second)
		ws = append(ws, w)
		if w.total > 0 && done(w.share(slowIdx)) {
			return ws, true, time.Since(start)
		}
	}
	return ws, false, time.Since(start)
}

// watchLatencies samples l7lb's latency average of every target of the
// seed group but slowAddr until the returned function is called, which
// returns the highest it saw.
func watchLatencies(e *env, slowAddr string) func() time.Duration {
	g := e.rt.Group(seedGroup)
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		var peak time.Duration
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, tg := range g.Targets() {
				if l, ok := tg.Meter.Latency(); ok && tg.Addr != slowAddr {
					peak = max(peak, l)
				}
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() time.Duration { close(stop); return <-done }
}

func logWindows(t *testing.T, what string, ws []window) {
	t.Helper()
	for i, w := range ws {
		t.Logf("%s window %d: %v", what, i, w)
	}
}

// TestBalanceSlowReplica: three replicas, one of them 100 ms slower than
// the others on every reply, under SDK Search calls from 8 goroutines,
// for each balancing algorithm. Shares come from the replicas' own
// counters of served RPCs.
func TestBalanceSlowReplica(t *testing.T) {
	cases := []struct {
		name        string
		annotations string
		algorithm   config.Algorithm
		check       func(t *testing.T, r *balanceRig, slow *fakemilvus.Replica)
	}{
		{
			// No annotation: the default is unchanged, and round robin
			// ignores latency: each replica gets a third, slow or not.
			name:      "round_robin",
			algorithm: config.AlgorithmRoundRobin,
			check: func(t *testing.T, r *balanceRig, _ *fakemilvus.Replica) {
				w := r.run(t, 600, 20*time.Second)
				t.Logf("measured: %v", w)
				if w.calls != 600 {
					t.Fatalf("%d calls within the limit, want 600", w.calls)
				}
				for i := range w.served {
					if s := w.share(i); math.Abs(s-1.0/3) > 0.05 {
						t.Errorf("replica-%d served %.1f%% of %d RPCs, want 33.3%% ± 5%%", i, 100*s, w.total)
					}
				}
			},
		},
		{
			name:        "least_outstanding_requests",
			annotations: "    alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=least_outstanding_requests",
			algorithm:   config.AlgorithmLeastOutstanding,
			check: func(t *testing.T, r *balanceRig, _ *fakemilvus.Replica) {
				r.run(t, 100, 5*time.Second) // warm-up
				w := r.run(t, 600, 20*time.Second)
				t.Logf("measured: %v", w)
				// Little's law: a target's throughput is the requests it
				// holds divided by their time there (X = L / W). Least
				// outstanding requests keeps the in-flight counts L about
				// equal, so throughput goes as 1/W: the slowed replica,
				// 100 ms per reply against 5-15 ms for the others, would
				// get under 7 %. Two random choices only keep L
				// roughly equal (ties, including all idle, go either way,
				// and the slowed replica may hold one more request than
				// the others), so the bound is 20 %, a clear margin below
				// round robin's 33 % and above what Little's law predicts.
				if s := w.share(slowIdx); s >= 0.20 {
					t.Errorf("slowed replica served %.1f%% of %d RPCs, want under 20%% (round robin gives 33%%)", 100*s, w.total)
				}
			},
		},
		{
			name:        "weighted_random_anomaly_mitigation",
			annotations: "    alb.ingress.kubernetes.io/target-group-attributes: load_balancing.algorithm.type=weighted_random,load_balancing.algorithm.anomaly_mitigation=on",
			algorithm:   config.AlgorithmWeightedRandom,
			check: func(t *testing.T, r *balanceRig, _ *fakemilvus.Replica) {
				// Mitigation halves the weight of an anomalous target
				// every 250 ms period, so a third falls under a tenth
				// within a few periods.
				ws, ok, took := r.pollShare(t, 5*time.Second, func(s float64) bool { return s < 0.10 })
				logWindows(t, "mitigation", ws)
				if !ok {
					t.Fatalf("slowed replica's share not under 10%% within %v", took.Round(time.Millisecond))
				}
				t.Logf("share under 10%% after %v", took.Round(time.Millisecond))
				// And it stays down: a dimmed target gets a step of weight
				// back in every period with too few requests to judge, so
				// its share wobbles, but far below a third.
				w := r.run(t, 600, 20*time.Second)
				t.Logf("after mitigation: %v", w)
				if s := w.share(slowIdx); s >= 0.15 {
					t.Errorf("slowed replica served %.1f%% of %d RPCs after mitigation, want under 15%%", 100*s, w.total)
				}
			},
		},
		{
			name:        "peak_ewma",
			annotations: "    l7lb.io/load-balancing-algorithm: peak_ewma",
			algorithm:   config.AlgorithmPeakEWMA,
			check: func(t *testing.T, r *balanceRig, slow *fakemilvus.Replica) {
				r.run(t, 100, 5*time.Second) // warm-up: every replica measured
				// The premise is that one replica is much slower than the
				// others. A busy machine can slow them all (runs here saw
				// the fast replicas' averages reach 90-107 ms): then peak
				// EWMA rightly sees no slow one. So l7lb's own latency
				// averages are watched during the window, and a window
				// where a fast replica's reached a third of slowLatency
				// and the bound failed is measured again, at most 3 times.
				for attempt := 1; ; attempt++ {
					watch := watchLatencies(r.e, slow.Addr())
					w := r.run(t, 600, 20*time.Second)
					fastPeak := watch()
					t.Logf("measured: %v; fast replicas' latency averages peaked at %v", w, fastPeak.Round(100*time.Microsecond))
					s := w.share(slowIdx)
					if s < 0.02 {
						break
					}
					if fastPeak < slowLatency/3 {
						t.Fatalf("slowed replica served %.1f%% of %d RPCs, want under 2%%", 100*s, w.total)
					}
					if attempt == 3 {
						t.Fatalf("slowed replica served %.1f%% of %d RPCs, want under 2%%; in each of 3 windows the fast replicas measured at least a third as slow (last peak %v): machine too busy", 100*s, w.total, fastPeak)
					}
					t.Logf("slowed replica served %.1f%% while the fast replicas measured up to %v: not one slow replica among fast ones; measuring again", 100*s, fastPeak)
				}
				// Recovery: its latency average decays while it gets
				// little traffic, so it is tried again, answers fast and
				// earns its share back.
				slow.SetLatency(0)
				ws, ok, took := r.pollShare(t, 8*time.Second, func(s float64) bool { return s > 0.15 })
				logWindows(t, "recovery", ws)
				if !ok {
					t.Fatalf("recovered replica's share not above 15%% within %v", took.Round(time.Millisecond))
				}
				t.Logf("share above 15%% again after %v", took.Round(time.Millisecond))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := startBalanceRig(t, tc.annotations, tc.algorithm)
			slow := r.e.cluster.Replicas()[slowIdx]
			slow.SetLatency(slowLatency)
			tc.check(t, r, slow)
		})
	}
}
