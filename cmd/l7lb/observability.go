package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/l7lb/l7lb/internal/accesslog"
	"github.com/l7lb/l7lb/internal/admin"
	"github.com/l7lb/l7lb/internal/listener"
	"github.com/l7lb/l7lb/internal/metrics"
	"github.com/l7lb/l7lb/internal/observe"
	"github.com/l7lb/l7lb/internal/runtime"
)

const defaultAdmin = "127.0.0.1:9901"

// observabilityFlags are the metrics, access log and admin flags of serve
// (issue 5) and of controller (issue 14: the chart's ServiceMonitor
// scrapes the controller's /metrics).
type observabilityFlags struct {
	admin        string
	pprof        bool
	accessLog    string
	accessSample int
	fs           *flag.FlagSet
}

func (of *observabilityFlags) register(fs *flag.FlagSet) {
	of.fs = fs
	fs.StringVar(&of.admin, "admin", defaultAdmin, "admin listener (metrics, JSON API, dashboard, /healthz, /readyz); \"off\" disables it")
	fs.BoolVar(&of.pprof, "pprof", false, "serve /debug/pprof/ on the admin listener")
	fs.StringVar(&of.accessLog, "access-log", "off", "access log: off, stdout, or a file to append JSON lines to")
	fs.IntVar(&of.accessSample, "access-log-sample", 1, "log one request in N (requests that fail are always logged)")
}

// observability is what serve runs besides the data plane.
type observability struct {
	log     *slog.Logger
	Metrics *metrics.Metrics
	// Admin is nil with --admin off. serve calls Admin.SetReady(false)
	// first on SIGTERM and Admin.RecordReload after each reload.
	Admin    *admin.Server
	explicit bool // --admin was given, so failing to bind is fatal
	access   *accesslog.Logger
	file     *os.File
}

// setup builds metrics, the access log and the admin server; start
// attaches them to the runtime and starts listening.
func (of *observabilityFlags) setup(log *slog.Logger, stdout io.Writer, certs admin.Certs, classes []string) (*observability, error) {
	if of.accessSample < 1 {
		return nil, fmt.Errorf("--access-log-sample %d: want 1 or more", of.accessSample)
	}
	o := &observability{log: log, Metrics: metrics.New(metrics.Options{Version: version, Certs: certs})}
	if of.fs != nil {
		of.fs.Visit(func(f *flag.Flag) { o.explicit = o.explicit || f.Name == "admin" })
	}
	switch of.accessLog {
	case "", "off":
	case "stdout", "-":
		o.access = accesslog.New(stdout, accesslog.Options{Sample: of.accessSample, Counter: o.Metrics})
	default:
		f, err := os.OpenFile(of.accessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--access-log: %w", err)
		}
		o.file = f
		o.access = accesslog.New(f, accesslog.Options{Sample: of.accessSample, Counter: o.Metrics})
	}
	if of.admin != "off" && of.admin != "" {
		if len(classes) == 0 {
			classes = []string{"alb"}
		}
		o.Admin = admin.New(admin.Options{Addr: of.admin, Certs: certs, Stats: o.Metrics, Metrics: o.Metrics.Handler(), Reloads: o.Metrics,
			PProf: of.pprof, Log: log, Version: version, Classes: classes})
	}
	return o, nil
}

// Observer is what the data path reports finished requests to.
func (o *observability) Observer() observe.Observer { return tee{o} }

// start attaches the running data plane, records the start-up load as a
// successful one when there was one (serve's; the controller's first
// snapshot comes later, through RecordReload), listens and turns ready.
func (o *observability) start(rt *runtime.Runtime, startupLoad bool) error {
	o.Metrics.Attach(rt)
	if startupLoad {
		o.RecordReload(true, nil)
	}
	if o.Admin == nil {
		return nil
	}
	o.Admin.Attach(rt)
	if err := o.Admin.Start(); err != nil {
		if !o.explicit && errors.Is(err, syscall.EADDRINUSE) {
			// Several l7lb processes on one machine (tests, a second
			// instance): the default port is taken; serving goes on.
			o.log.Warn("admin listener not started: the default address is in use; set --admin", "address", defaultAdmin)
			o.Admin = nil
			return nil
		}
		return err
	}
	o.Admin.SetReady(true)
	o.log.Info(fmt.Sprintf("admin: dashboard, JSON API and metrics on http://%s/ (/metrics, /api/v1/, /healthz, /readyz)", o.Admin.Addr()))
	return nil
}

// RecordReload counts a configuration load: in the admin API (which
// counts it in the metrics too) or, without one, in the metrics alone.
func (o *observability) RecordReload(ok bool, err error) {
	if o.Admin != nil {
		o.Admin.RecordReload(ok, err)
		return
	}
	o.Metrics.Reloaded(ok, time.Now())
}

// shutdown stops the admin listener and flushes the access log.
func (o *observability) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if o.Admin != nil {
		if err := o.Admin.Shutdown(ctx); err != nil {
			o.log.Warn("admin listener shutdown", "error", err)
		}
	}
	if o.access != nil {
		if err := o.access.Close(); err != nil {
			o.log.Warn("access log", "error", err)
		}
	}
	if o.file != nil {
		o.file.Close()
	}
}

// tee hands each finished request to the metrics and the access log, and
// gives listeners their connection counters (runtime looks for
// ListenerEvents).
type tee struct{ o *observability }

func (t tee) RPCDone(r *observe.RPC) {
	t.o.Metrics.RPCDone(r)
	if t.o.access != nil {
		t.o.access.RPCDone(r)
	}
}

func (t tee) ListenerEvents(port int) listener.Events { return t.o.Metrics.Listener(port) }
