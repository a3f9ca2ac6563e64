package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/l7lb/l7lb/internal/runtime"
)

// StatusSource is the running data plane (*runtime.Runtime).
type StatusSource interface {
	Status() runtime.Status
}

// TargetStates are the ALB's target states, in the order they are
// exported.
var TargetStates = []string{"initial", "healthy", "unhealthy", "draining", "unused"}

// statusCollector reads target states and in-flight counts from the
// runtime when Prometheus scrapes, so nothing has to be kept in sync and
// targets that left simply stop appearing.
type statusCollector struct {
	src      atomic.Pointer[StatusSource]
	state    *prometheus.Desc
	inFlight *prometheus.Desc
	total    *prometheus.Desc
	counts   *prometheus.Desc
}

func newStatusCollector() *statusCollector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &statusCollector{
		state:    prometheus.NewDesc(name("target_health_state"), "1 for a target's current state (initial, healthy, unhealthy, draining, unused), 0 for the others.", []string{"target_group", "target", "state"}, nil),
		inFlight: prometheus.NewDesc(name("target_in_flight_requests"), "Requests (streams) forwarded to a target and not finished.", []string{"target_group", "target"}, nil),
		total:    prometheus.NewDesc(name("in_flight_requests"), "Requests (streams) forwarded to any target and not finished.", nil, nil),
		counts:   prometheus.NewDesc(name("target_group_targets"), "Targets of a group by state (the ALB's HealthyHostCount and UnHealthyHostCount).", []string{"target_group", "state"}, nil),
	}
}

// Attach makes the collector read src (the runtime, once it exists).
func (m *Metrics) Attach(src StatusSource) { m.status.src.Store(&src) }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.inFlight
	ch <- c.total
	ch <- c.counts
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.src.Load()
	if p == nil {
		return
	}
	var total int64
	for _, g := range (*p).Status().Groups {
		counts := map[string]int{}
		for _, t := range g.Targets {
			counts[t.State]++
			total += t.InFlight
			ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(t.InFlight), g.Name, t.Address)
			for _, s := range TargetStates {
				v := 0.0
				if s == t.State {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, g.Name, t.Address, s)
			}
		}
		for _, s := range TargetStates {
			ch <- prometheus.MustNewConstMetric(c.counts, prometheus.GaugeValue, float64(counts[s]), g.Name, s)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(total))
}
