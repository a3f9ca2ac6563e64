// Package metrics defines every Prometheus metric l7lb exports (the names
// are documented in docs/metrics.md) and records them from the request
// path without allocating or taking a global lock: each combination of
// labels is resolved once into a series of pre-bound children, kept in a
// copy-on-write map that readers load atomically.
package metrics

import (
	"net/http"
	goruntime "runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/l7lb/l7lb/internal/upstream"
)

const namespace = "l7lb"

// Label sets.
var (
	requestLabels = []string{"listener", "rule", "target_group", "target", "grpc_service", "grpc_method", "code"}
	streamLabels  = []string{"listener", "target_group", "target", "grpc_service", "grpc_method"}
)

// durationBuckets cover a health check (sub-millisecond) up to a long
// search or a bulk insert.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Options configure Metrics.
type Options struct {
	Version string // l7lb's version for l7lb_build_info
	// Certs, when set, describes the served certificates for
	// l7lb_certificate_not_after_timestamp_seconds.
	Certs Certs
}

// Metrics holds l7lb's registry and every metric in it. Safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	targetDuration *prometheus.HistogramVec
	received       *prometheus.CounterVec
	sent           *prometheus.CounterVec

	conns          *prometheus.GaugeVec
	connsTotal     *prometheus.CounterVec
	connsRejected  *prometheus.CounterVec
	connsDenied    *prometheus.CounterVec
	handshakes     *prometheus.CounterVec
	handshakeErrs  *prometheus.CounterVec
	ejections      *prometheus.CounterVec
	retries        *prometheus.CounterVec
	failOpen       *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	lastReloadOK   prometheus.Gauge
	lastReloadTime prometheus.Gauge
	accessDropped  prometheus.Counter
	accessWritten  prometheus.Counter
	procs          prometheus.Gauge
	procsChanges   prometheus.Counter

	status *statusCollector

	// series: the request path's pre-resolved children by label values.
	series atomic.Pointer[map[seriesKey]*series]
	// targets: per-target counters the admin API samples.
	targets atomic.Pointer[map[targetKey]*TargetStats]
	// codes: requests per code label, for the dashboard's errors by code.
	codes atomic.Pointer[map[string]*atomic.Uint64]
	mu    sync.Mutex // serialises writers of series, targets and codes

	// Targets and groups that have event counters, for Prune; under mu.
	eventTargets map[targetKey]bool
	eventGroups  map[string]bool
}

// New registers every metric in a new registry.
func New(opts Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), eventTargets: map[targetKey]bool{}, eventGroups: map[string]bool{}}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	histogram := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: durationBuckets}, streamLabels)
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	}
	m.requests = counter("requests_total", "Finished requests (gRPC calls and HTTP requests) by listener, rule, target group, target, gRPC service and method, and code (gRPC status name; HTTP status for other requests).", requestLabels...)
	m.duration = histogram("request_duration_seconds", "Time from a request's headers to its end as l7lb saw it (the whole RPC, streams included).")
	m.targetDuration = histogram("target_response_duration_seconds", "Time from sending a request to its target until the target's response headers arrived (the ALB's target_processing_time).")
	m.received = counter("received_bytes_total", "Request body bytes received from clients.", streamLabels...)
	m.sent = counter("sent_bytes_total", "Response body bytes sent to clients.", streamLabels...)
	m.conns = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "client_connections", Help: "Client connections open now."}, []string{"listener"})
	m.connsTotal = counter("client_connections_total", "Client connections accepted.", "listener")
	m.connsRejected = counter("client_connections_rejected_total", "Client connections closed as soon as they were accepted because the process had --max-conns open.", "listener")
	m.connsDenied = counter("client_connections_denied_total", "Client connections reset as soon as they were accepted because the client's address is outside the listener's inbound-cidrs.", "listener")
	m.handshakes = counter("tls_handshakes_total", "Completed TLS handshakes with clients by protocol version.", "listener", "tls_version")
	m.handshakeErrs = counter("tls_handshake_errors_total", "Failed TLS handshakes with clients by reason.", "listener", "reason")
	m.ejections = counter("target_ejections_total", "Targets taken out of rotation (health checks or outlier detection) by reason.", "target_group", "target", "reason")
	m.retries = counter("retries_total", "Requests retried on another target by reason.", "target_group", "reason")
	m.failOpen = counter("fail_open_total", "Times a target group had no healthy target and routed to all of them (fail open).", "target_group")
	m.reloads = counter("config_reloads_total", "Configuration reloads by result (success, failure).", "result")
	m.lastReloadOK = gauge("config_last_reload_successful", "1 when the last configuration reload succeeded, 0 when it failed.")
	m.lastReloadTime = gauge("config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration load (start-up counts).")
	m.accessDropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "access_log_dropped_total", Help: "Access log lines dropped because the writer could not keep up."})
	m.accessWritten = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "access_log_lines_total", Help: "Access log lines written."})
	m.procs = gauge("gomaxprocs", "OS threads running Go code now (GOMAXPROCS); with --procs auto it follows the load.")
	m.procsChanges = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "gomaxprocs_changes_total", Help: "Times --procs auto changed GOMAXPROCS."})
	m.procs.Set(float64(goruntime.GOMAXPROCS(0)))
	targetStalls := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "target_connection_stalls_total",
		Help: "Target connections given up because the target granted no flow-control window while requests waited."},
		func() float64 { return float64(upstream.Stalls()) })
	targetHangs := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "target_hangs_total",
		Help: "Times a target connection held requests and answered nothing, not even a liveness PING (the target is reported hung and ejected)."},
		func() float64 { return float64(upstream.Hangs()) })
	m.status = newStatusCollector()
	certs := newCertCollector(m.status, opts.Certs)

	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info", Help: "Always 1; the labels say which l7lb runs."}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(opts.Version, revision(), goruntime.Version()).Set(1)
	m.lastReloadOK.Set(1)

	m.reg.MustRegister(m.requests, m.duration, m.targetDuration, m.received, m.sent,
		m.conns, m.connsTotal, m.connsRejected, m.connsDenied, m.handshakes, m.handshakeErrs, m.ejections, m.retries, m.failOpen,
		m.reloads, m.lastReloadOK, m.lastReloadTime, m.accessDropped, m.accessWritten, m.procs, m.procsChanges, targetStalls, targetHangs, buildInfo, m.status, certs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.series.Store(&map[seriesKey]*series{})
	m.targets.Store(&map[targetKey]*TargetStats{})
	m.codes.Store(&map[string]*atomic.Uint64{})
	return m
}

func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

// SetProcs records that --procs auto changed GOMAXPROCS to n.
func (m *Metrics) SetProcs(n int) {
	m.procsChanges.Inc()
	m.procs.Set(float64(n))
}

// Registry is where the metrics live (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
