// Package targetgroup is a target group at run time: its targets (from
// configuration or discovery), the balancer that picks one per request,
// and the upstream connection pool that reaches them.
package targetgroup

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l7lb/l7lb/internal/balance/roundrobin"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/discovery/dns"
	"github.com/l7lb/l7lb/internal/upstream"
)

// Target is one endpoint of a group.
type Target struct {
	// Addr is "host:port", ready to dial.
	Addr     string
	Endpoint config.Endpoint
	// InFlight counts requests currently forwarded to this target.
	InFlight atomic.Int64
	// Served counts requests forwarded to this target.
	Served atomic.Uint64
	// Conns are the multiplexed HTTP/2 connections that the data plane
	// forwards gRPC over.
	Conns *upstream.Conns
}

// targetSet is replaced whole when endpoints change, so readers never see
// a half-updated set.
type targetSet struct {
	all    []*Target
	picker *roundrobin.Picker[*Target]
}

// State reports the target's state as the ALB names it (initial,
// healthy, unhealthy, draining, unused), why, and since when. Until health
// checking decides otherwise, a ready endpoint is healthy, a terminating
// one draining and one not ready unhealthy.
func (t *Target) State() (state, reason string, since time.Time) {
	switch {
	case t.Endpoint.Terminating:
		return "draining", "Target.DeregistrationInProgress", time.Time{}
	case !t.Endpoint.Ready:
		return "unhealthy", "Target.NotReady", time.Time{}
	default:
		return "healthy", "", time.Time{}
	}
}

// Group is safe for concurrent use. Pick is lock-free.
type Group struct {
	Config config.TargetGroup
	Pool   *upstream.Pool
	log    *slog.Logger

	set atomic.Pointer[targetSet]

	mu     sync.Mutex // serialises SetEndpoints
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a group from its configuration and starts its discovery (DNS
// when configured). Close stops it.
func New(cfg config.TargetGroup, log *slog.Logger) *Group {
	g := &Group{Config: cfg, Pool: upstream.New(cfg), log: log.With("targetGroup", cfg.Name)}
	g.SetEndpoints(cfg.Endpoints)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.done = make(chan struct{})
	if cfg.DNS != nil {
		go func() {
			defer close(g.done)
			dns.Watch(ctx, *cfg.DNS, net.DefaultResolver, g.log, g.SetEndpoints)
		}()
	} else {
		close(g.done)
	}
	return g
}

// Name is "namespace/service:port".
func (g *Group) Name() string { return g.Config.Name }

// SetEndpoints replaces the group's targets. Targets whose address stays
// keep their counters. Endpoints that are not ready or are terminating get
// no new requests.
func (g *Group) SetEndpoints(eps []config.Endpoint) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := map[string]*Target{}
	if s := g.set.Load(); s != nil {
		for _, t := range s.all {
			old[t.Addr] = t
		}
	}
	next := &targetSet{}
	var ready []*Target
	for _, ep := range eps {
		addr := net.JoinHostPort(ep.Address, strconv.Itoa(ep.Port))
		t := old[addr]
		if t == nil {
			t = &Target{Addr: addr, Conns: upstream.NewConns(addr, g.Config.Protocol == config.ProtocolHTTPS)}
		}
		delete(old, addr)
		t.Endpoint = ep
		next.all = append(next.all, t)
		if ep.Ready && !ep.Terminating {
			ready = append(ready, t)
		}
	}
	next.picker = roundrobin.New(ready)
	g.set.Store(next)
	// Targets that left take no new streams; their connections close once
	// the streams in flight end.
	for _, t := range old {
		t.Conns.Close()
	}
	g.log.Debug("targets updated", "targets", len(next.all), "ready", len(ready))
}

// Pick chooses the target for one request; ok is false when the group has
// no ready target.
func (g *Group) Pick() (*Target, bool) {
	return g.set.Load().picker.Pick()
}

// Targets lists every target, ready or not.
func (g *Group) Targets() []*Target {
	return g.set.Load().all
}

// Close stops discovery and releases upstream connections as their
// streams end.
func (g *Group) Close() {
	g.cancel()
	<-g.done
	g.Pool.Close()
	for _, t := range g.set.Load().all {
		t.Conns.Close()
	}
}
