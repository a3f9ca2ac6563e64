package metrics

import (
	"maps"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/l7lb/l7lb/internal/observe"
)

// seriesKey is one combination of request labels. Its strings come from
// the configuration or from the interned tables in names.go, so a lookup
// hashes them without copying.
type seriesKey struct {
	port                  int
	rule, group, target   string
	service, method, code string
}

// series is everything one finished request touches, resolved once.
type series struct {
	key            seriesKey
	requests       prometheus.Counter
	duration       prometheus.Observer
	targetDuration prometheus.Observer
	received       prometheus.Counter
	sent           prometheus.Counter
	target         *TargetStats // nil when no target was picked
	code           *atomic.Uint64
}

// RPCDone implements observe.Observer: it records one finished request.
// Warm, it allocates nothing and takes no lock (see BenchmarkRPCDone).
func (m *Metrics) RPCDone(r *observe.RPC) {
	k := seriesKey{port: r.ListenerPort, rule: r.Rule, group: r.TargetGroup, target: r.Target}
	if r.GRPC {
		k.service, k.method = grpcMethod(r.Path)
	}
	k.code = codeOf(r)
	s := (*m.series.Load())[k]
	if s == nil {
		s = m.addSeries(k)
	}
	total := r.End.Sub(r.Start)
	s.requests.Inc()
	s.duration.Observe(total.Seconds())
	if !r.TargetStart.IsZero() && !r.TargetFirstByte.IsZero() {
		s.targetDuration.Observe(r.TargetFirstByte.Sub(r.TargetStart).Seconds())
	}
	if r.BytesIn > 0 {
		s.received.Add(float64(r.BytesIn))
	}
	if r.BytesOut > 0 {
		s.sent.Add(float64(r.BytesOut))
	}
	s.code.Add(1)
	if t := s.target; t != nil {
		t.requests.Add(1)
		t.latency.Observe(total)
		if isError(k.code) {
			t.errors.Add(1)
			t.setLastError(k.code, r.Error, r.End)
		}
	}
}

// codeOf is the code label of a finished request.
func codeOf(r *observe.RPC) string {
	switch {
	case r.GRPC && r.GRPCStatus != "":
		return grpcCodeName(r.GRPCStatus)
	case r.Reset != 0:
		return CodeReset
	case r.GRPC && r.HTTPStatus != 0 && r.HTTPStatus != 200:
		// A gRPC request answered with a plain HTTP error: report the
		// HTTP status, as gRPC clients would only see UNKNOWN/UNAVAILABLE.
		return httpCodeName(r.HTTPStatus)
	case r.GRPC:
		return CodeNone
	default:
		return httpCodeName(r.HTTPStatus)
	}
}

// isError tells the dashboard's error counts: every gRPC status but OK,
// HTTP 5xx, resets and requests that got no answer.
func isError(code string) bool {
	switch {
	case code == "OK":
		return false
	case len(code) == 3 && code[0] >= '1' && code[0] <= '4':
		return false
	}
	return true
}

// addSeries resolves the children for a new label combination and
// publishes a copy of the map that includes it.
func (m *Metrics) addSeries(k seriesKey) *series {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.series.Load()
	if s := cur[k]; s != nil {
		return s
	}
	// Own copies: the key outlives the request whose strings it came from.
	k.rule, k.group, k.target = strings.Clone(k.rule), strings.Clone(k.group), strings.Clone(k.target)
	port := strconv.Itoa(k.port)
	stream := []string{port, k.group, k.target, k.service, k.method}
	s := &series{
		key:            k,
		requests:       m.requests.WithLabelValues(port, k.rule, k.group, k.target, k.service, k.method, k.code),
		duration:       m.duration.WithLabelValues(stream...),
		targetDuration: m.targetDuration.WithLabelValues(stream...),
		received:       m.received.WithLabelValues(stream...),
		sent:           m.sent.WithLabelValues(stream...),
		code:           m.codeCounterLocked(k.code),
	}
	if k.target != "" {
		s.target = m.targetLocked(k.group, k.target)
	}
	next := maps.Clone(cur)
	next[k] = s
	m.series.Store(&next)
	return s
}

func (m *Metrics) codeCounterLocked(code string) *atomic.Uint64 {
	cur := *m.codes.Load()
	if c := cur[code]; c != nil {
		return c
	}
	c := &atomic.Uint64{}
	next := maps.Clone(cur)
	next[code] = c
	m.codes.Store(&next)
	return c
}

// Codes returns how many requests ended with each code label since start.
func (m *Metrics) Codes() map[string]uint64 {
	cur := *m.codes.Load()
	out := make(map[string]uint64, len(cur))
	for code, c := range cur {
		out[code] = c.Load()
	}
	return out
}
