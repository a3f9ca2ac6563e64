package targetgroup

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/l7lb/l7lb/internal/balance/load"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/health"
	"github.com/l7lb/l7lb/internal/upstream"
)

// Target states, as the ALB names them.
const (
	StateInitial   = "initial"
	StateHealthy   = "healthy"
	StateUnhealthy = "unhealthy"
	StateDraining  = "draining"
	StateUnused    = "unused"
)

// Passive health: consecutive failures that eject a target, and the
// back-off, doubled on each ejection in a row.
const (
	ejectAfter    = 5
	ejectBase     = 10 * time.Second
	ejectMax      = 5 * time.Minute
	maxEjectRatio = 0.5
)

// reasonEjected marks a target that passive health took out.
const reasonEjected = "Target.OutlierEjected"

type stateInfo struct {
	state, reason, detail string
	since                 time.Time
}

// Target is one endpoint of a group.
type Target struct {
	// Addr is "host:port", ready to dial.
	Addr     string
	Endpoint config.Endpoint
	// Meter is the target's load: requests in flight (from when the
	// request is sent until the target's reply ends), latency, outcomes
	// and weight.
	Meter load.Meter
	// Served counts requests forwarded to this target.
	Served atomic.Uint64
	// Conns are the multiplexed HTTP/2 connections that the data plane
	// forwards gRPC over.
	Conns *upstream.Conns

	g           *Group
	st          atomic.Pointer[stateInfo]
	healthyAt   atomic.Int64 // when it last became healthy (slow start)
	stop        func()       // stops the health checks
	drainCancel func()

	// Under g.mu:
	okRun, failRun int // consecutive active results
	passiveFails   atomic.Int32
	// answeredAt is when the target last answered a method, by
	// MethodSlot (unix nanoseconds): a deadline missed here counts
	// against the target only when the method was answered elsewhere.
	answeredAt   [methodSlots]atomic.Int64
	ejections    int
	ejectedUntil time.Time
}

// State reports the target's state (ALB names), the reason with what was
// seen, and since when.
func (t *Target) State() (state, reason string, since time.Time) {
	s := t.st.Load()
	reason = s.reason
	if s.detail != "" {
		reason += ": " + s.detail
	}
	return s.state, reason, s.since
}

func (t *Target) setStateLocked(state, reason, detail string) {
	cur := t.st.Load()
	if cur.state == state && cur.reason == reason && cur.detail == detail {
		return
	}
	since := time.Now()
	if cur.state == state {
		since = cur.since
	}
	t.st.Store(&stateInfo{state: state, reason: reason, detail: detail, since: since})
	if state == StateHealthy && cur.state != StateHealthy {
		t.healthyAt.Store(since.UnixNano())
	}
	if cur.state != state {
		t.g.log.Info("target "+state, "target", t.Addr, "reason", reason, "detail", detail, "was", cur.state)
	}
}

// activeResult applies one health check result with the thresholds.
func (t *Target) activeResult(r health.Result) {
	g := t.g
	hc := g.Config.HealthCheck
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining[t.Addr] == t || g.targets[t.Addr] != t {
		return
	}
	before := t.st.Load().state
	if r.OK {
		t.okRun++
		t.failRun = 0
		// An ejected target comes back through the checks, but not before
		// its back-off is over.
		if before != StateHealthy && t.okRun >= hc.HealthyThreshold && time.Now().After(t.ejectedUntil) && t.Endpoint.Ready {
			t.setStateLocked(StateHealthy, "", "")
			t.passiveFails.Store(0)
		}
	} else {
		t.failRun++
		t.okRun = 0
		if before == StateInitial || (before == StateHealthy && t.failRun >= hc.UnhealthyThreshold) ||
			(before == StateUnhealthy && t.st.Load().reason != reasonEjected) {
			if before == StateInitial && t.failRun < hc.UnhealthyThreshold {
				t.setStateLocked(StateInitial, "Elb.InitialHealthChecking", r.Reason+": "+r.Detail)
			} else {
				t.setStateLocked(StateUnhealthy, r.Reason, r.Detail)
			}
		}
	}
	if t.st.Load().state != before {
		g.rebuildLocked()
	}
}

// methodSlots is the size of the per-target table of when each method
// was last answered; methods share a slot by hash, which only makes the
// deadline rule a little more willing to count a miss.
const methodSlots = 64

var methodSeed = maphash.MakeSeed()

// MethodSlot is the slot of a request path ("/package.Service/Method") in
// the per-target table of answered methods.
func MethodSlot(path string) uint8 { return uint8(maphash.String(methodSeed, path) % methodSlots) }

// Succeeded reports a request the target answered (passive health), for
// a method of the given slot.
func (t *Target) Succeeded(slot uint8) {
	if t.passiveFails.Load() != 0 {
		t.passiveFails.Store(0)
	}
	// A store only when the slot's time is stale, so that busy targets do
	// not bounce its cache line between cores on every answer.
	now := time.Now().UnixNano()
	at := &t.answeredAt[slot%methodSlots]
	if now-at.Load() > int64(10*time.Millisecond) {
		at.Store(now)
	}
	if t.g.Config.AnomalyMitigation {
		t.Meter.Answered()
	}
}

// MissedDeadline reports a request that reached its deadline at t with no
// answer started. It counts as a failure of the target (a local-origin
// failure, as Envoy calls them) only when another target of the group
// answered the same method since the request started: then the target,
// not the method or the deadline, is what was slow.
//
// A target that answered the method itself since then is not counted
// either: a deadline shorter than the method's usual time fails on every
// target alike, and must not eject them one after another.
func (t *Target) MissedDeadline(slot uint8, started time.Time, method string) {
	since := started.UnixNano()
	if t.answeredAt[slot%methodSlots].Load() > since {
		return
	}
	for _, o := range t.g.set.Load().all {
		if o != t && o.answeredAt[slot%methodSlots].Load() > since {
			t.Failed("deadline exceeded on " + method + " while other targets answered it")
			return
		}
	}
}

// Hung reports that the target answered nothing, not even a PING, while
// it held requests (upstream.Conns.OnHang): it is ejected at once, within
// the limit of half the group, instead of after ejectAfter failures that
// a hung target would take a whole deadline to produce.
func (t *Target) Hung(err error) {
	if t.g.Config.AnomalyMitigation {
		t.Meter.Failed()
	}
	t.eject(err.Error())
}

// Failed reports a request that failed because of the target: its
// connection failed, it reset the stream before answering, it answered
// ServiceNotReady, or it missed a deadline that its peers met. Enough in
// a row eject it for a while; it comes back through the active checks.
func (t *Target) Failed(why string) {
	if t.g.Config.AnomalyMitigation {
		t.Meter.Failed()
	}
	if t.passiveFails.Add(1) < ejectAfter {
		return
	}
	t.eject(why)
}

// eject takes a healthy target out of rotation for a back-off that
// doubles with each ejection in a row.
func (t *Target) eject(why string) {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.targets[t.Addr] != t || t.st.Load().state != StateHealthy {
		return
	}
	// At most half of a group is ejected at once.
	ejected := 0
	for _, o := range g.targets {
		if o.st.Load().reason == reasonEjected {
			ejected++
		}
	}
	if float64(ejected+1) > maxEjectRatio*float64(len(g.targets)) {
		return
	}
	t.ejections++
	backoff := min(ejectBase<<min(t.ejections-1, 10), ejectMax)
	t.ejectedUntil = time.Now().Add(backoff)
	t.okRun = 0
	t.passiveFails.Store(0)
	t.setStateLocked(StateUnhealthy, reasonEjected, why+"; ejected for "+backoff.String())
	g.events.Ejected(g.Config.Name, t.Addr, why)
	g.rebuildLocked()
}

func sortTargets(ts []*Target) {
	slices.SortFunc(ts, func(a, b *Target) int { return strings.Compare(a.Addr, b.Addr) })
}
