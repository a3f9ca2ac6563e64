package runtime

import (
	"slices"
	"time"

	"github.com/l7lb/l7lb/internal/balance/load"
	"github.com/l7lb/l7lb/internal/config"
)

// Status is a point-in-time picture of the running data plane, for the
// admin API and `l7lb status`.
type Status struct {
	Snapshot  *config.Snapshot `json:"-"`
	Listeners []ListenerStatus `json:"listeners"`
	Groups    []GroupStatus    `json:"targetGroups"`
}

// ListenerStatus is one listener.
type ListenerStatus struct {
	Port            int      `json:"port"`
	Protocol        string   `json:"protocol"`
	Address         string   `json:"address"`
	CertificateARNs []string `json:"certificateArns,omitempty"`
	Rules           int      `json:"rules"`
}

// GroupStatus is one target group and its targets.
type GroupStatus struct {
	Name            string `json:"name"`
	Protocol        string `json:"protocol"`
	ProtocolVersion string `json:"protocolVersion"`
	// Algorithm is the balancing algorithm in effect (config.Algorithm;
	// round_robin when the configuration names none).
	Algorithm string         `json:"algorithm"`
	Targets   []TargetStatus `json:"targets"`
}

// TargetStatus is one target. State uses the ALB's names: initial,
// healthy, unhealthy, draining, unused.
type TargetStatus struct {
	Address  string    `json:"address"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	InFlight int64     `json:"inFlight"`
	Served   uint64    `json:"served"`
	Since    time.Time `json:"since,omitzero"`
	// LatencyEWMAMs is the peak-EWMA of the target's time to response
	// headers, in milliseconds like the admin API's p99Ms, as last
	// updated (load.Meter.Latency). Every algorithm measures it, not only
	// peak_ewma. It is absent (0) until the target has answered once,
	// since no measurement is not a zero latency.
	LatencyEWMAMs float64 `json:"latencyEwmaMs,omitempty"`
	// Weight is the target's share relative to a healthy peer, 0 to 1:
	// below 1 only while anomaly mitigation dims it (slow start is not
	// included; it skips a new target's turns instead).
	Weight float64 `json:"weight"`
	// Anomalous is anomaly mitigation's last judgement of the target.
	Anomalous bool `json:"anomalous"`
}

// loadStatus fills in what the target's meter says.
func (ts *TargetStatus) loadStatus(m *load.Meter) {
	if d, ok := m.Latency(); ok {
		ts.LatencyEWMAMs = float64(d) / float64(time.Millisecond)
	}
	ts.Weight = float64(m.Weight()) / 1000
	ts.Anomalous = m.Anomalous()
}

// Status reports what is serving now.
func (rt *Runtime) Status() Status {
	p := rt.cur.Load()
	st := Status{Snapshot: p.snapshot}
	addrs := rt.Addrs()
	if p.snapshot == nil {
		return st
	}
	for _, l := range p.snapshot.Listeners {
		ls := ListenerStatus{Port: l.Port, Protocol: string(l.Protocol), CertificateARNs: l.CertificateARNs, Rules: len(l.Rules)}
		if a := addrs[l.Port]; a != nil {
			ls.Address = a.String()
		}
		st.Listeners = append(st.Listeners, ls)
	}
	for _, tg := range p.snapshot.TargetGroups {
		g := p.groups[tg.Name]
		if g == nil {
			continue
		}
		gs := GroupStatus{Name: tg.Name, Protocol: string(tg.Protocol), ProtocolVersion: string(tg.ProtocolVersion), Algorithm: string(g.Algorithm())}
		for _, t := range g.Targets() {
			ts := TargetStatus{Address: t.Addr, InFlight: t.Meter.InFlight(), Served: t.Served.Load()}
			ts.State, ts.Reason, ts.Since = t.State()
			ts.loadStatus(&t.Meter)
			gs.Targets = append(gs.Targets, ts)
		}
		slices.SortFunc(gs.Targets, func(a, b TargetStatus) int {
			if a.Address < b.Address {
				return -1
			}
			if a.Address > b.Address {
				return 1
			}
			return 0
		})
		st.Groups = append(st.Groups, gs)
	}
	return st
}
