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

// statusCollector reads target states, loads and group settings from the
// runtime when Prometheus scrapes, so nothing has to be kept in sync and
// targets that left simply stop appearing.
type statusCollector struct {
	src       atomic.Pointer[StatusSource]
	state     *prometheus.Desc
	inFlight  *prometheus.Desc
	latency   *prometheus.Desc
	weight    *prometheus.Desc
	anomalous *prometheus.Desc
	total     *prometheus.Desc
	counts    *prometheus.Desc
	groupInfo *prometheus.Desc
}

func newStatusCollector() *statusCollector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &statusCollector{
		state:    prometheus.NewDesc(name("target_health_state"), "1 for a target's current state (initial, healthy, unhealthy, draining, unused), 0 for the others.", []string{"target_group", "target", "state"}, nil),
		inFlight: prometheus.NewDesc(name("target_in_flight_requests"), "Requests (streams) forwarded to a target and not finished.", []string{"target_group", "target"}, nil),
		latency: prometheus.NewDesc(name("target_latency_ewma_seconds"), "Peak-EWMA of a target's time to response headers, as last updated; absent until the target answered once.",
			[]string{"target_group", "target"}, nil),
		weight: prometheus.NewDesc(name("target_weight"), "A target's share relative to a healthy peer, 0 to 1; below 1 while anomaly mitigation dims it.",
			[]string{"target_group", "target"}, nil),
		anomalous: prometheus.NewDesc(name("target_anomalous"), "1 while anomaly mitigation judges a target worse than its peers, else 0.", []string{"target_group", "target"}, nil),
		total:     prometheus.NewDesc(name("in_flight_requests"), "Requests (streams) forwarded to any target and not finished.", nil, nil),
		counts:    prometheus.NewDesc(name("target_group_targets"), "Targets of a group by state (the ALB's HealthyHostCount and UnHealthyHostCount).", []string{"target_group", "state"}, nil),
		// The algorithm is an info metric rather than a label on the
		// group's other series: a reload that changes it then replaces
		// one series instead of renaming every series of the group.
		groupInfo: prometheus.NewDesc(name("target_group_info"), "Always 1; the algorithm label is the group's balancing algorithm.", []string{"target_group", "algorithm"}, nil),
	}
}

// Attach makes the collector read src (the runtime, once it exists).
func (m *Metrics) Attach(src StatusSource) { m.status.src.Store(&src) }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.inFlight
	ch <- c.latency
	ch <- c.weight
	ch <- c.anomalous
	ch <- c.total
	ch <- c.counts
	ch <- c.groupInfo
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.src.Load()
	if p == nil {
		return
	}
	var total int64
	for _, g := range (*p).Status().Groups {
		ch <- prometheus.MustNewConstMetric(c.groupInfo, prometheus.GaugeValue, 1, g.Name, g.Algorithm)
		counts := map[string]int{}
		for _, t := range g.Targets {
			counts[t.State]++
			total += t.InFlight
			ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(t.InFlight), g.Name, t.Address)
			// No latency measured yet is no series rather than 0, which
			// would read as the fastest target of the group.
			if t.LatencyEWMAMs > 0 {
				ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, t.LatencyEWMAMs/1000, g.Name, t.Address)
			}
			ch <- prometheus.MustNewConstMetric(c.weight, prometheus.GaugeValue, t.Weight, g.Name, t.Address)
			anomalous := 0.0
			if t.Anomalous {
				anomalous = 1
			}
			ch <- prometheus.MustNewConstMetric(c.anomalous, prometheus.GaugeValue, anomalous, g.Name, t.Address)
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
