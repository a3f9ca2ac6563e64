package admin

import (
	"maps"
	"sync"
	"time"

	"github.com/l7lb/l7lb/internal/metrics"
	"github.com/l7lb/l7lb/internal/runtime"
)

// window is how many one-second samples are kept per target: a minute of
// history plus the sample the first delta starts from.
const window = 61

// Stats are the request counters the sampler reads (*metrics.Metrics).
type Stats interface {
	Target(group, target string) *metrics.TargetStats
	Codes() map[string]uint64
	Prune(runtime.Status)
}

type sample struct {
	at    time.Time
	stats metrics.TargetSnapshot
}

// ring is one target's last samples, oldest first once full.
type ring struct {
	s    [window]sample
	n    int // samples stored (≤ window)
	next int // index the next sample goes to
}

func (r *ring) add(s sample) {
	r.s[r.next] = s
	r.next = (r.next + 1) % window
	r.n = min(r.n+1, window)
}

// at returns the i-th sample, 0 the oldest.
func (r *ring) at(i int) sample {
	return r.s[(r.next-r.n+i+window)%window]
}

// Point is one second of a target's traffic.
type Point struct {
	Time   int64   `json:"t"` // Unix seconds
	RPS    float64 `json:"rps"`
	P99MS  float64 `json:"p99Ms"`
	Errors float64 `json:"errorsPerSec"`
}

// Minute is a target's traffic over the last minute (or since it was
// first sampled, if that is less).
type Minute struct {
	RPS    float64 `json:"rps"`
	P99MS  float64 `json:"p99Ms"`
	Errors float64 `json:"errorsPerSec"`
}

type codeSample struct {
	at    time.Time
	codes map[string]uint64
}

// sampler turns cumulative counters into per-second series, every second.
type sampler struct {
	stats Stats
	src   func() runtime.Status

	mu     sync.Mutex
	rings  map[[2]string]*ring
	codes  [window]codeSample
	ncodes int
	seen   map[string]time.Time // ingress "namespace/name" -> first seen
}

func newSampler(stats Stats, src func() runtime.Status) *sampler {
	return &sampler{stats: stats, src: src, rings: map[[2]string]*ring{}, seen: map[string]time.Time{}}
}

// tick takes one sample of every target and forgets targets that left.
func (s *sampler) tick(now time.Time) {
	st := s.src()
	s.stats.Prune(st)
	s.mu.Lock()
	defer s.mu.Unlock()
	present := map[[2]string]bool{}
	for _, g := range st.Groups {
		for _, t := range g.Targets {
			k := [2]string{g.Name, t.Address}
			present[k] = true
			var snap metrics.TargetSnapshot
			if ts := s.stats.Target(g.Name, t.Address); ts != nil {
				snap = ts.Snapshot()
			}
			r := s.rings[k]
			if r == nil {
				r = &ring{}
				s.rings[k] = r
			}
			r.add(sample{at: now, stats: snap})
		}
	}
	for k := range s.rings {
		if !present[k] {
			delete(s.rings, k)
		}
	}
	copy(s.codes[:], s.codes[1:])
	s.codes[window-1] = codeSample{at: now, codes: s.stats.Codes()}
	s.ncodes = min(s.ncodes+1, window)
	if st.Snapshot != nil {
		for _, name := range ingressNames(st) {
			if _, ok := s.seen[name]; !ok {
				s.seen[name] = now
			}
		}
	}
}

func rate(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func delta(a, b sample) Point {
	d := b.at.Sub(a.at)
	lat := b.stats.Latency.Sub(a.stats.Latency)
	return Point{
		Time:   b.at.Unix(),
		RPS:    rate(b.stats.Requests-a.stats.Requests, d),
		P99MS:  ms(lat.Quantile(0.99)),
		Errors: rate(b.stats.Errors-a.stats.Errors, d),
	}
}

// target returns a target's per-second series and its last minute.
func (s *sampler) target(group, addr string) ([]Point, Minute) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rings[[2]string{group, addr}]
	if r == nil || r.n < 2 {
		return []Point{}, Minute{}
	}
	pts := make([]Point, 0, r.n-1)
	for i := 1; i < r.n; i++ {
		pts = append(pts, delta(r.at(i-1), r.at(i)))
	}
	m := delta(r.at(0), r.at(r.n-1))
	return pts, Minute{RPS: m.RPS, P99MS: m.P99MS, Errors: m.Errors}
}

// CodeCount is how many requests ended with a code.
type CodeCount struct {
	Code       string `json:"code"`
	Total      uint64 `json:"total"`
	LastMinute uint64 `json:"lastMinute"`
	Error      bool   `json:"error"`
}

func (s *sampler) codeCounts() map[string][2]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][2]uint64{}
	if s.ncodes == 0 {
		return out
	}
	last := s.codes[window-1].codes
	first := s.codes[window-s.ncodes].codes
	for code, n := range last {
		out[code] = [2]uint64{n, n - first[code]}
	}
	return out
}

func (s *sampler) firstSeen() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.seen)
}
