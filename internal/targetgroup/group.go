// Package targetgroup is a target group at run time: its targets (from
// configuration or discovery) with their health, the balancer that picks
// one per request, and the upstream connections that reach them.
package targetgroup

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l7lb/l7lb/internal/balance/anomaly"
	"github.com/l7lb/l7lb/internal/balance/leastrequest"
	"github.com/l7lb/l7lb/internal/balance/load"
	"github.com/l7lb/l7lb/internal/balance/peakewma"
	"github.com/l7lb/l7lb/internal/balance/roundrobin"
	"github.com/l7lb/l7lb/internal/balance/weightedrandom"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/discovery/dns"
	"github.com/l7lb/l7lb/internal/health"
	"github.com/l7lb/l7lb/internal/upstream"
)

// targetSet is replaced whole whenever targets or their health change, so
// readers never see a half-updated set and Pick takes no lock.
type targetSet struct {
	all []*Target // registered and draining targets
	// picked are the targets the picker chooses from, meters their loads.
	picked []*Target
	meters []*load.Meter
	picker picker
	// failOpen is set when no target is healthy and the picker holds
	// every registered target, as the ALB does.
	failOpen bool
	// settled: some healthy target is past its slow start, so newer ones
	// ramp up (the ALB only ramps when one such target exists).
	settled bool
}

// picker is what every balancing algorithm offers (internal/balance).
type picker interface {
	Pick() (*Target, bool)
	Len() int
}

// newPicker builds the group's algorithm over targets.
func newPicker(a config.Algorithm, targets []*Target, meters []*load.Meter) picker {
	switch a {
	case config.AlgorithmLeastOutstanding:
		return leastrequest.New(targets, meters)
	case config.AlgorithmWeightedRandom:
		return weightedrandom.New(targets, meters)
	case config.AlgorithmPeakEWMA:
		return peakewma.New(targets, meters)
	}
	return roundrobin.New(targets)
}

// Algorithm is the group's balancing algorithm.
func (g *Group) Algorithm() config.Algorithm {
	if g.Config.Algorithm == "" {
		return config.AlgorithmRoundRobin
	}
	return g.Config.Algorithm
}

// Events hears about what health does to targets (the metrics).
type Events interface {
	Ejected(group, target, reason string)
	Retried(group, reason string)
	FailedOpen(group string)
}

type nopEvents struct{}

func (nopEvents) Ejected(string, string, string) {}
func (nopEvents) Retried(string, string)         {}
func (nopEvents) FailedOpen(string)              {}

// Group is safe for concurrent use. Pick is lock-free.
type Group struct {
	Config config.TargetGroup
	Pool   *upstream.Pool
	log    *slog.Logger
	events Events

	set         atomic.Pointer[targetSet]
	retryTokens atomic.Int64 // thousandths of a retry

	mu       sync.Mutex // serialises changes to targets and their states
	targets  map[string]*Target
	draining map[string]*Target
	inherit  map[string]*Target // a predecessor's targets, for their health
	failOpen bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New builds a group from its configuration and starts its discovery and
// health checks. Close stops them. events may be nil.
func New(cfg config.TargetGroup, log *slog.Logger, events Events) *Group {
	return NewSuccessor(nil, cfg, log, events)
}

// NewSuccessor builds a group that replaces prev after a reload changed
// its settings: targets that stay keep their health state (and any
// ejection), as the ALB keeps target health across a modified target
// group.
func NewSuccessor(prev *Group, cfg config.TargetGroup, log *slog.Logger, events Events) *Group {
	if events == nil {
		events = nopEvents{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Group{Config: cfg, Pool: upstream.New(cfg), log: log.With("targetGroup", cfg.Name), events: events,
		targets: map[string]*Target{}, draining: map[string]*Target{}, ctx: ctx, cancel: cancel}
	if prev != nil {
		g.inherit = map[string]*Target{}
		prev.mu.Lock()
		for addr, t := range prev.targets {
			g.inherit[addr] = t
		}
		prev.mu.Unlock()
	}
	g.SetEndpoints(cfg.Endpoints)
	if cfg.AnomalyMitigation {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.mitigate(ctx)
		}()
	}
	if cfg.DNS != nil {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			dns.Watch(ctx, *cfg.DNS, net.DefaultResolver, g.log, g.SetEndpoints)
		}()
	}
	return g
}

// Name is "namespace/service:port".
func (g *Group) Name() string { return g.Config.Name }

// SetEndpoints replaces the group's endpoints. Targets that stay keep
// their health and counters; new ones start "initial" and are checked at
// once; endpoints that left (or turned terminating) drain: no new
// requests, in-flight ones finish until the deregistration delay.
func (g *Group) SetEndpoints(eps []config.Endpoint) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx.Err() != nil {
		return
	}
	seen := map[string]bool{}
	for _, ep := range eps {
		addr := net.JoinHostPort(ep.Address, strconv.Itoa(ep.Port))
		if seen[addr] {
			continue
		}
		seen[addr] = true
		if ep.Terminating {
			if t := g.targets[addr]; t != nil {
				g.startDrainLocked(t)
			}
			continue
		}
		t := g.targets[addr]
		if t == nil {
			// A target back before its drain finished is registered anew;
			// the old one finishes draining its own connections.
			delete(g.draining, addr)
			t = g.newTargetLocked(addr, ep)
			g.targets[addr] = t
		}
		t.Endpoint = ep
		if !ep.Ready {
			t.setStateLocked(StateUnhealthy, "Target.NotReady", "endpoint not ready")
		}
	}
	for addr, t := range g.targets {
		if !seen[addr] {
			g.startDrainLocked(t)
		}
	}
	g.rebuildLocked()
}

func (g *Group) newTargetLocked(addr string, ep config.Endpoint) *Target {
	t := &Target{Addr: addr, Endpoint: ep, g: g}
	t.Conns = upstream.NewConns(addr, g.Config.Protocol == config.ProtocolHTTPS, &t.Meter)
	t.Conns.OnHang = t.Hung
	ctx, cancel := context.WithCancel(g.ctx)
	t.stop = cancel
	if old := g.inherit[addr]; old != nil {
		delete(g.inherit, addr)
		t.st.Store(old.st.Load())
		t.ejections, t.ejectedUntil = old.ejections, old.ejectedUntil
	}
	if g.Config.HealthCheck.Interval <= 0 {
		if t.st.Load() != nil {
			return t
		}
		// Checks off: a new target gets traffic at once.
		t.st.Store(&stateInfo{state: StateHealthy, since: time.Now()})
		return t
	}
	if t.st.Load() == nil {
		t.st.Store(&stateInfo{state: StateInitial, reason: "Elb.InitialHealthChecking", since: time.Now()})
	}
	p := health.NewProber(g.Config.HealthCheck, ep.Address, ep.Port)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		health.Loop(ctx, p, g.Config.HealthCheck, t.activeResult)
	}()
	return t
}

// startDrainLocked stops new requests to t and closes its connections
// once its requests end or the deregistration delay runs out.
func (g *Group) startDrainLocked(t *Target) {
	delete(g.targets, t.Addr)
	if _, ok := g.draining[t.Addr]; ok {
		return
	}
	g.draining[t.Addr] = t
	t.stop()
	t.setStateLocked(StateDraining, "Target.DeregistrationInProgress", "")
	ctx, cancel := context.WithTimeout(g.ctx, g.Config.DeregistrationDelay)
	t.drainCancel = cancel
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer cancel()
		t.Conns.Close() // no new streams; closes as the last one ends
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for t.Meter.InFlight() > 0 {
			select {
			case <-ctx.Done():
				if g.ctx.Err() == nil && ctx.Err() == context.DeadlineExceeded {
					g.log.Warn("deregistration delay over; closing the target's connections", "target", t.Addr, "inFlight", t.Meter.InFlight())
					t.Conns.Abort()
				}
				g.finishDrain(t)
				return
			case <-tick.C:
			}
		}
		g.finishDrain(t)
	}()
}

func (g *Group) finishDrain(t *Target) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining[t.Addr] == t {
		delete(g.draining, t.Addr)
		g.rebuildLocked()
	}
}

// rebuildLocked makes a new target set from the current states.
func (g *Group) rebuildLocked() {
	next := &targetSet{}
	var healthy, candidates []*Target
	for _, t := range g.targets {
		next.all = append(next.all, t)
		s := t.st.Load().state
		if s == StateHealthy {
			healthy = append(healthy, t)
		}
		if t.Endpoint.Ready {
			candidates = append(candidates, t)
		}
	}
	for _, t := range g.draining {
		next.all = append(next.all, t)
	}
	sortTargets(next.all)
	sortTargets(healthy)
	sortTargets(candidates)
	if len(healthy) == 0 && len(candidates) > 0 {
		// Fail open, as the ALB: with no healthy target, every registered
		// one gets traffic rather than none.
		next.failOpen = true
		healthy = candidates
	}
	if next.failOpen != g.failOpen {
		g.failOpen = next.failOpen
		if next.failOpen {
			g.log.Warn("no healthy target; failing open to every registered target", "targets", len(candidates))
			g.events.FailedOpen(g.Config.Name)
		} else {
			g.log.Info("healthy targets again; fail-open ended", "healthy", len(healthy))
		}
	}
	if d := g.Config.SlowStart; d > 0 {
		for _, t := range healthy {
			if at := t.healthyAt.Load(); at == 0 || time.Since(time.Unix(0, at)) >= d {
				next.settled = true
			}
		}
		if !next.settled && len(healthy) > 0 {
			// Everything is new (say, at start): nobody ramps, but the
			// first to finish its ramp settles the group.
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				select {
				case <-time.After(d):
					g.mu.Lock()
					g.rebuildLocked()
					g.mu.Unlock()
				case <-g.ctx.Done():
				}
			}()
		}
	}
	next.picked = healthy
	next.meters = make([]*load.Meter, len(healthy))
	for i, t := range healthy {
		next.meters[i] = &t.Meter
	}
	next.picker = newPicker(g.Algorithm(), healthy, next.meters)
	g.set.Store(next)
}

// mitigate runs anomaly mitigation over the targets in rotation, one
// period at a time, until ctx ends.
func (g *Group) mitigate(ctx context.Context) {
	var d anomaly.Detector
	tick := time.NewTicker(anomaly.Period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			d.Tick(g.set.Load().meters)
		}
	}
}

// CountRequest earns the retry budget a fifth of a retry: retries add at
// most 20 % to the load (and a burst of at most 10).
func (g *Group) CountRequest() {
	if g.retryTokens.Add(200) > 10000 {
		g.retryTokens.Store(10000)
	}
}

// TakeRetry spends one retry from the budget, if there is one.
func (g *Group) TakeRetry() bool {
	for {
		v := g.retryTokens.Load()
		if v < 1000 {
			return false
		}
		if g.retryTokens.CompareAndSwap(v, v-1000) {
			return true
		}
	}
}

// Pick chooses the target for one request; ok is false when the group has
// no target to send it to.
func (g *Group) Pick() (*Target, bool) {
	s := g.set.Load()
	t, ok := s.picker.Pick()
	if ok && s.settled && g.Config.SlowStart > 0 {
		// Slow start: a target healthy for a fraction f of the ramp keeps
		// its turn with probability f, so its share grows linearly.
		if at := t.healthyAt.Load(); at != 0 {
			if el := time.Since(time.Unix(0, at)); el < g.Config.SlowStart && rand.Float64()*float64(g.Config.SlowStart) > float64(el) {
				if t2, ok2 := s.picker.Pick(); ok2 {
					return t2, true
				}
			}
		}
	}
	return t, ok
}

// PickOther chooses a target other than avoid (for a retry), falling back
// to avoid itself only when it is the only one. The algorithm gets a few
// tries (a load-based one may well prefer avoid again, since a failure
// ended its request), then a random other target stands.
func (g *Group) PickOther(avoid *Target) (*Target, bool) {
	s := g.set.Load()
	n := len(s.picked)
	if n < 2 {
		return s.picker.Pick()
	}
	for i := 0; i < 3; i++ {
		if t, ok := s.picker.Pick(); ok && t != avoid {
			return t, true
		}
	}
	i := rand.IntN(n)
	if s.picked[i] == avoid {
		i = (i + 1 + rand.IntN(n-1)) % n
	}
	return s.picked[i], true
}

// Events is where the group reports health events.
func (g *Group) Events() Events { return g.events }

// FailingOpen reports whether the group has no healthy target.
func (g *Group) FailingOpen() bool { return g.set.Load().failOpen }

// Targets lists every target, registered or draining.
func (g *Group) Targets() []*Target {
	return g.set.Load().all
}

// Close stops discovery and health checks and releases upstream
// connections as their streams end.
func (g *Group) Close() {
	g.mu.Lock()
	g.cancel()
	all := append([]*Target(nil), g.set.Load().all...)
	g.mu.Unlock()
	g.wg.Wait()
	g.Pool.Close()
	for _, t := range all {
		t.Conns.Close()
	}
}
