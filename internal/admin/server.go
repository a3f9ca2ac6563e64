// Package admin serves l7lb's admin listener: Prometheus metrics, JSON
// endpoints describing what runs (configuration, listeners, rules, target
// groups with their targets' state and traffic, certificates, the last
// reload), /healthz and /readyz, pprof when enabled, and the dashboard at
// "/", embedded in the binary.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/runtime"
)

// Source is the running data plane (*runtime.Runtime).
type Source interface {
	Status() runtime.Status
}

// Certs describes certificates by ARN (*certstore.Store). Only public
// parts come back: the store never returns keys through Describe.
type Certs interface {
	Describe(arn string) (certstore.Certificate, error)
}

// ReloadRecorder counts reloads (*metrics.Metrics).
type ReloadRecorder interface {
	Reloaded(ok bool, at time.Time)
}

// Options configure a Server.
type Options struct {
	Addr    string
	Certs   Certs
	Stats   Stats
	Metrics http.Handler
	Reloads ReloadRecorder
	// PProf mounts /debug/pprof/.
	PProf   bool
	Log     *slog.Logger
	Version string
	// Classes are the ingress classes served (the CLASS column).
	Classes []string
	// SampleEvery is the sampling period (default 1 s; tests shorten it).
	SampleEvery time.Duration
}

// ReloadInfo is the last configuration load.
type ReloadInfo struct {
	Time  time.Time `json:"time"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	// LastSuccess is when a configuration last loaded successfully.
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
}

// Server is the admin listener. Create with New, attach the runtime with
// Attach, then Start.
type Server struct {
	opts    Options
	started time.Time
	ready   atomic.Bool
	reload  atomic.Pointer[ReloadInfo]
	src     atomic.Pointer[Source]
	sampler *sampler

	mu   sync.Mutex
	ln   net.Listener
	http *http.Server
	stop chan struct{}
	done chan struct{}
}

// New returns a Server that is not ready and not listening yet.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = time.Second
	}
	s := &Server{opts: opts, started: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	s.sampler = newSampler(opts.Stats, s.status)
	return s
}

// Attach sets the data plane the server describes.
func (s *Server) Attach(src Source) { s.src.Store(&src) }

func (s *Server) status() runtime.Status {
	if p := s.src.Load(); p != nil {
		return (*p).Status()
	}
	return runtime.Status{}
}

// SetReady sets what /readyz answers: serve sets it once listening, and
// clears it first on SIGTERM so that a load balancer in front stops
// sending new clients before l7lb drains.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// RecordReload records a configuration load (start-up or reload) and its
// result for the API, the dashboard and the metrics.
func (s *Server) RecordReload(ok bool, err error) {
	now := time.Now()
	info := &ReloadInfo{Time: now, OK: ok}
	if err != nil {
		info.Error = err.Error()
	}
	if prev := s.reload.Load(); prev != nil {
		info.LastSuccess = prev.LastSuccess
	}
	if ok {
		info.LastSuccess = now
	}
	s.reload.Store(info)
	if s.opts.Reloads != nil {
		s.opts.Reloads.Reloaded(ok, now)
	}
}

// Handler serves every admin endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.opts.Metrics)
	}
	s.routeAPI(mux)
	if s.opts.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", dashboard())
	return mux
}

// Start listens on Options.Addr and starts serving and sampling.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", s.opts.Addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Unlock()
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opts.Log.Error("admin listener stopped", "error", err)
		}
	}()
	go s.sample()
	return nil
}

func (s *Server) sample() {
	defer close(s.done)
	t := time.NewTicker(s.opts.SampleEvery)
	defer t.Stop()
	s.sampler.tick(time.Now())
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.sampler.tick(now)
		}
	}
}

// Addr is the bound address (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops the listener and the sampler.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.http
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	close(s.stop)
	<-s.done
	return srv.Shutdown(ctx)
}
