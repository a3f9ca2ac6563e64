package metrics

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/l7lb/l7lb/internal/runtime"
)

type targetKey struct{ group, target string }

// TargetStats are one target's cumulative counters for the admin API,
// which samples them every second into RPS and p99 over time.
type TargetStats struct {
	requests atomic.Uint64
	errors   atomic.Uint64
	latency  Latency

	// The last error is written with TryLock: a request never waits, and
	// when two fail at once one of them is enough to show.
	errMu     sync.Mutex
	errCode   string
	errReason string
	errAt     time.Time
}

// TargetSnapshot is a TargetStats read at one moment.
type TargetSnapshot struct {
	Requests, Errors uint64
	Latency          LatencyCounts
	LastErrorCode    string
	LastError        string
	LastErrorAt      time.Time
}

func (t *TargetStats) setLastError(code, reason string, at time.Time) {
	if !t.errMu.TryLock() {
		return
	}
	t.errCode, t.errReason, t.errAt = code, reason, at
	t.errMu.Unlock()
}

// Snapshot reads the counters.
func (t *TargetStats) Snapshot() TargetSnapshot {
	s := TargetSnapshot{Requests: t.requests.Load(), Errors: t.errors.Load(), Latency: t.latency.Snapshot()}
	t.errMu.Lock()
	s.LastErrorCode, s.LastError, s.LastErrorAt = t.errCode, t.errReason, t.errAt
	t.errMu.Unlock()
	return s
}

func (m *Metrics) targetLocked(group, target string) *TargetStats {
	k := targetKey{group, target}
	cur := *m.targets.Load()
	if t := cur[k]; t != nil {
		return t
	}
	t := &TargetStats{}
	next := maps.Clone(cur)
	next[k] = t
	m.targets.Store(&next)
	return t
}

// Target returns a target's counters (nil if it has served nothing yet).
func (m *Metrics) Target(group, target string) *TargetStats {
	return (*m.targets.Load())[targetKey{group, target}]
}

// Prune removes the series of targets, target groups and rules that are
// no longer configured, so that the number of series follows the
// configuration instead of growing with every target that ever existed.
// It is called periodically with the running status; a request that
// finishes on a removed target afterwards brings its series back until
// the next call.
func (m *Metrics) Prune(st runtime.Status) {
	targets := map[targetKey]bool{}
	groups := map[string]bool{}
	for _, g := range st.Groups {
		groups[g.Name] = true
		for _, t := range g.Targets {
			targets[targetKey{g.Name, t.Address}] = true
		}
	}
	rules := map[string]bool{}
	if st.Snapshot != nil {
		for _, l := range st.Snapshot.Listeners {
			for _, r := range l.Rules {
				rules[r.Name] = true
			}
		}
	}
	gone := func(k seriesKey) bool {
		switch {
		case k.target != "" && !targets[targetKey{k.group, k.target}]:
			return true
		case k.group != "" && !groups[k.group]:
			return true
		case k.rule != "" && !rules[k.rule]:
			return true
		}
		return false
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.series.Load()
	var next map[seriesKey]*series
	for k := range cur {
		if !gone(k) {
			continue
		}
		if next == nil {
			next = maps.Clone(cur)
		}
		delete(next, k)
		port := strconv.Itoa(k.port)
		m.requests.DeleteLabelValues(port, k.rule, k.group, k.target, k.service, k.method, k.code)
		for _, v := range []*prometheus.MetricVec{m.duration.MetricVec, m.targetDuration.MetricVec, m.received.MetricVec, m.sent.MetricVec} {
			v.DeleteLabelValues(port, k.group, k.target, k.service, k.method)
		}
	}
	if next != nil {
		m.series.Store(&next)
	}
	curT := *m.targets.Load()
	var nextT map[targetKey]*TargetStats
	for k := range curT {
		if targets[k] {
			continue
		}
		if nextT == nil {
			nextT = maps.Clone(curT)
		}
		delete(nextT, k)
	}
	if nextT != nil {
		m.targets.Store(&nextT)
	}
	for k := range m.eventTargets {
		if !targets[k] {
			delete(m.eventTargets, k)
			m.ejections.DeletePartialMatch(prometheus.Labels{"target_group": k.group, "target": k.target})
		}
	}
	for g := range m.eventGroups {
		if !groups[g] {
			delete(m.eventGroups, g)
			m.retries.DeletePartialMatch(prometheus.Labels{"target_group": g})
			m.failOpen.DeletePartialMatch(prometheus.Labels{"target_group": g})
		}
	}
}
