package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/gcfloor"
	"github.com/l7lb/l7lb/internal/memtidy"
	"github.com/l7lb/l7lb/internal/procs"
	"github.com/l7lb/l7lb/internal/runtime"
	"github.com/l7lb/l7lb/internal/truststore"
)

type serveFlags struct {
	source       sourceFlags
	log          logFlags
	listen       stringList
	internalAddr string
	addrFile     string
	drain        time.Duration
	idle         time.Duration
	procs        string
	heapFloorMiB int
	memoryTidy   bool
	obs          observabilityFlags // issue 5: --admin, --pprof, --access-log (observability.go)
	limits       limitFlags         // --max-conns, --http1-*, --client-* (flags.go, docs/limits.md)
}

func (sf *serveFlags) register(fs *flag.FlagSet) {
	sf.source.classes.split = true
	sf.source.endpoints.split = false
	fs.Var(&sf.source.files, "f", "Kubernetes YAML file with Ingress (and IngressClass, Service, EndpointSlice, Endpoints) objects; repeatable")
	fs.Var(&sf.source.classes, "class", "ingress classes to serve, comma-separated (default alb)")
	fs.Var(&sf.source.endpoints, "endpoints", "targets of a Service: NAMESPACE/SERVICE=HOST:PORT[,HOST:PORT...] or NAMESPACE/SERVICE=dns:NAME:PORT; repeatable")
	fs.StringVar(&sf.source.store, "store", "", "certificate store directory (default $L7LB_CERT_STORE or "+certstore.DefaultDir()+")")
	fs.Var(&sf.listen, "listen", "bind a listener somewhere else: PORT=HOST:PORT, e.g. 443=127.0.0.1:8443; repeatable")
	fs.StringVar(&sf.internalAddr, "internal-address", "127.0.0.1", "address for listeners of scheme internal (internet-facing listeners bind every interface)")
	fs.StringVar(&sf.addrFile, "addr-file", "", "write the bound listener addresses as JSON {\"443\":\"127.0.0.1:8443\"} to this file once serving")
	fs.DurationVar(&sf.drain, "drain-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long in-flight requests may take to finish")
	fs.DurationVar(&sf.idle, "idle-timeout", 60*time.Second, "close client connections without streams after this long")
	fs.StringVar(&sf.procs, "procs", "auto", "OS threads running Go code (GOMAXPROCS): auto fits them to the load, up to the CPUs l7lb may use; a number fixes them (so does the GOMAXPROCS environment variable)")
	fs.BoolVar(&sf.memoryTidy, "memory-tidy", true, "when the process goes quiet after a burst (say, thousands of clients connected and now idle), collect and return free memory to the system, at most every 10 s")
	fs.IntVar(&sf.heapFloorMiB, "gc-heap-floor-mib", 8, "a GC ballast of this many MiB (counted as live heap, never resident): the collector runs that much less often while the live heap is small, which lowers CPU and tail latency under load; 0, or the GOGC environment variable, turns it off")
	fs.StringVar(&sf.log.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&sf.log.format, "log-format", "text", "text or json")
	sf.limits.register(fs)
	sf.obs.register(fs)
}

// procsPolicy reads --procs: nil when GOMAXPROCS is fixed (by the flag,
// which it then applies, or by the environment).
func (sf *serveFlags) procsPolicy() (*procs.Policy, error) {
	switch {
	case sf.procs == "auto" && os.Getenv("GOMAXPROCS") != "":
		return nil, nil
	case sf.procs == "auto":
		p := procs.Defaults(goruntime.GOMAXPROCS(0))
		return &p, nil
	}
	n, err := strconv.Atoi(sf.procs)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("--procs %q: want auto or a number of threads from 1", sf.procs)
	}
	goruntime.GOMAXPROCS(n)
	return nil, nil
}

// bindFunc maps listeners to addresses, honouring --listen overrides.
func (sf *serveFlags) bindFunc() (func(config.Listener) string, error) {
	over := map[int]string{}
	for _, v := range sf.listen.values {
		p, addr, ok := strings.Cut(v, "=")
		port, err := strconv.Atoi(p)
		if !ok || err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("--listen %q: want PORT=HOST:PORT, e.g. 443=127.0.0.1:8443", v)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--listen %q: %w", v, err)
		}
		over[port] = addr
	}
	return func(l config.Listener) string {
		if a, ok := over[l.Port]; ok {
			return a
		}
		host := ""
		if l.Scheme == config.SchemeInternal {
			host = sf.internalAddr
		}
		return net.JoinHostPort(host, strconv.Itoa(l.Port))
	}, nil
}

// parseStartup parses the command line of a long-running command (serve,
// controller) and makes what both start from: the logger and the listener
// addresses. ok is false after a usage error, which is then already on
// stderr; the command exits 2.
func (sf *serveFlags) parseStartup(fs *flag.FlagSet, args []string, stderr io.Writer) (log *slog.Logger, bind func(config.Listener) string, ok bool) {
	if err := fs.Parse(args); err != nil {
		return nil, nil, false
	}
	log, err := sf.log.logger(stderr)
	if err != nil {
		printUsageError(stderr, fs, err)
		return nil, nil, false
	}
	bind, err = sf.bindFunc()
	if err != nil {
		printUsageError(stderr, fs, err)
		return nil, nil, false
	}
	if err := sf.limits.validate(); err != nil {
		printUsageError(stderr, fs, err)
		return nil, nil, false
	}
	return log, bind, true
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("l7lb serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf serveFlags
	sf.register(fs)
	log, bind, ok := sf.parseStartup(fs, args, stderr)
	if !ok {
		return 2
	}
	adaptProcs, err := sf.procsPolicy()
	if err != nil {
		printUsageError(stderr, fs, err)
		return 2
	}
	if sf.heapFloorMiB < 0 {
		printUsageError(stderr, fs, errors.New("--gc-heap-floor-mib must be 0 (off) or more"))
		return 2
	}
	store, err := openStore(sf.source.store)
	if err != nil {
		log.Error("cannot open the certificate store", "error", err)
		return 1
	}
	trust, err := truststore.Open(store.Dir())
	if err != nil {
		log.Error("cannot open the trust stores", "error", err)
		return 1
	}
	snap, warnings, err := sf.source.load(store.Has, trust.Has)
	for _, w := range warnings {
		log.Warn(w.Error())
	}
	if err != nil {
		log.Error("configuration refused; not serving", "error", err)
		return 1
	}
	if path := os.Getenv("L7LB_CPUPROFILE"); path != "" {
		// A developer's hook for profiling the data path under a benchmark:
		// the profile covers the whole serve run and is written on exit.
		stop, err := startCPUProfile(path)
		if err != nil {
			log.Error("L7LB_CPUPROFILE", "error", err)
			return 1
		}
		defer stop()
	}
	// Observability (issue 5): metrics, access log, admin API.
	obs, err := sf.obs.setup(log, stdout, store, sf.source.classes.values)
	if err != nil {
		log.Error("cannot set up observability", "error", err)
		return 1
	}
	defer obs.shutdown()
	rtOpts := runtime.Options{Log: log, Certs: store, TrustStores: trust, Bind: bind, IdleTimeout: sf.idle, Observer: obs.Observer(), GroupEvents: obs.Metrics}
	sf.limits.apply(&rtOpts, log)
	rt := runtime.New(rtOpts)
	if err := rt.Apply(snap); err != nil {
		log.Error("cannot start serving", "error", err)
		return 1
	}
	describe(log, rt, store)
	if err := obs.start(rt, true); err != nil {
		log.Error("cannot start the admin listener", "error", err)
		return 1
	}
	if sf.addrFile != "" {
		if err := writeAddrFile(sf.addrFile, rt); err != nil {
			log.Error("cannot write --addr-file", "error", err)
			return 1
		}
	}
	rl := &reloader{source: &sf.source, store: store, trust: trust, rt: rt, log: log, onResult: obs.RecordReload}
	rctx, stopReload := context.WithCancel(ctx)
	defer stopReload()
	go rl.run(rctx, time.Second)
	if adaptProcs != nil {
		pc := &procs.Controller{Policy: *adaptProcs, Log: log, OnChange: obs.Metrics.SetProcs}
		go pc.Run(rctx)
	}
	if sf.heapFloorMiB > 0 && os.Getenv("GOGC") == "" {
		gcfloor.Set(sf.heapFloorMiB << 20)
	}
	if sf.memoryTidy {
		if _, err := memtidy.ReleaseImage(); err != nil {
			log.Warn("cannot release start-up pages", "error", err)
		}
		go memtidy.Run(rctx, nil)
	}

	<-ctx.Done()
	// Readiness turns not-ready first, so that whatever routes to l7lb
	// stops sending new connections while the existing ones drain.
	if obs.Admin != nil {
		obs.Admin.SetReady(false)
	}
	log.Info("shutting down: no new connections; draining in-flight requests", "timeout", sf.drain)
	drainAndStop(log, rt, sf.drain)
	return 0
}

// drainAndStop gives in-flight requests up to timeout to finish and then
// closes what is left; hitting the timeout is the expected end of a long
// drain, not a problem worth a warning.
func drainAndStop(log *slog.Logger, rt *runtime.Runtime, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := rt.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", "error", err)
	}
	log.Info("stopped")
}

func openStore(dir string) (*certstore.Store, error) {
	if dir == "" {
		dir = certstore.DefaultDir()
	}
	return certstore.Open(dir)
}

// describe says in plain words what is served where.
func describe(log *slog.Logger, rt *runtime.Runtime, store *certstore.Store) {
	snap := rt.Snapshot()
	addrs := rt.Addrs()
	for _, l := range snap.Listeners {
		log.Info(fmt.Sprintf("listening on %s for %s port %d (%s), %d rules", addrs[l.Port], l.Protocol, l.Port, l.Scheme, len(l.Rules)))
		for i, arn := range l.CertificateARNs {
			role := "SNI"
			if i == 0 {
				role = "default"
			}
			names := ""
			if c, err := store.Describe(arn); err == nil {
				names = strings.Join(c.DNSNames, ", ")
			}
			log.Info(fmt.Sprintf("  %s certificate %s for %s", role, arn, names))
		}
	}
	for _, tg := range snap.TargetGroups {
		g := rt.Group(tg.Name)
		ready := 0
		for _, t := range g.Targets() {
			if t.Endpoint.Ready && !t.Endpoint.Terminating {
				ready++
			}
		}
		src := "endpoints"
		if tg.DNS != nil {
			src = "DNS " + tg.DNS.Name
		}
		log.Info(fmt.Sprintf("target group %s: %d targets (%d ready) from %s, %s %s", tg.Name, len(g.Targets()), ready, src, tg.Protocol, tg.ProtocolVersion))
	}
}

func writeAddrFile(path string, rt *runtime.Runtime) error {
	out := map[string]string{}
	ports := []int{}
	for port, a := range rt.Addrs() {
		out[strconv.Itoa(port)] = a.String()
		ports = append(ports, port)
	}
	slices.Sort(ports)
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
