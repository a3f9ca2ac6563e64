package fakemilvus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// Replica is one Milvus proxy: one TCP port serving gRPC and REST.
type Replica struct {
	index  int
	name   string
	opts   *Options
	log    *slog.Logger
	milvus milvuspb.MilvusServiceServer
	echo   *echo.Server

	served       atomic.Int64
	healthChecks atomic.Int64
	notServing   atomic.Bool // inverted so the zero value is "serving"
	notReady     atomic.Bool
	latency      atomic.Int64 // time.Duration
	// lastMD is the incoming metadata of the last non-health RPC, so that
	// a test can see what a proxy in front added (x-forwarded-for, the
	// X-Amzn-Mtls-* headers).
	lastMD atomic.Pointer[metadata.MD]

	mu       sync.Mutex
	addr     string // fixed after the first listen so Restart reuses the port
	run      *run   // nil while down
	draining *run   // a run being stopped gracefully; Kill may cut it short
}

// run is one up-period of a replica; Kill/Stop end it, Restart makes a new
// one because neither grpc.Server nor http.Server can be reused.
type run struct {
	lis     net.Listener
	grpc    *grpc.Server
	http    *http.Server
	grpcLis *chanListener
	httpLis *chanListener
	wg      sync.WaitGroup
	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
}

func newReplica(i int, addr string, opts *Options) *Replica {
	r := &Replica{
		index: i,
		name:  replicaName(opts.Name, i),
		opts:  opts,
		addr:  addr,
		echo:  echo.NewServer(),
	}
	r.log = opts.Logger.With("replica", r.name)
	r.milvus = opts.MilvusServer(r.notReady.Load)
	return r
}

func replicaName(cluster string, i int) string {
	if cluster == "" {
		return fmt.Sprintf("replica-%d", i)
	}
	return fmt.Sprintf("%s/replica-%d", cluster, i)
}

// Name is "replica-<index>", or "<Options.Name>/replica-<index>".
func (r *Replica) Name() string { return r.name }

// Addr is host:port; stable across Kill/Stop/Restart.
func (r *Replica) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// Served counts the gRPC and REST requests this replica answered, across
// restarts. grpc.health.v1 probes are not counted (see HealthChecks), so a
// balancer's health checking does not skew load-split assertions.
func (r *Replica) Served() int64 { return r.served.Load() }

// LastMetadata is a copy of the incoming metadata of the last RPC this
// replica served (health checks aside), or nil if it served none.
func (r *Replica) LastMetadata() metadata.MD {
	if md := r.lastMD.Load(); md != nil {
		return md.Copy()
	}
	return nil
}

// HealthChecks counts grpc.health.v1 calls.
func (r *Replica) HealthChecks() int64 { return r.healthChecks.Load() }

// Echo is this replica's echo service, for its observations (cancellations,
// deadlines).
func (r *Replica) Echo() *echo.Server { return r.echo }

// Up reports whether the replica is listening.
func (r *Replica) Up() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run != nil
}

// SetServing sets what grpc.health.v1 Check reports. Like Milvus, NOT_SERVING
// is an answer with gRPC status OK, not an error.
func (r *Replica) SetServing(v bool) { r.notServing.Store(!v) }

// Serving reports the SetServing state.
func (r *Replica) Serving() bool { return !r.notServing.Load() }

// SetNotReady makes every Milvus method answer in-body ServiceNotReady with
// gRPC OK, like a proxy that is initializing or stopping.
func (r *Replica) SetNotReady(v bool) { r.notReady.Store(v) }

// NotReady reports the SetNotReady state.
func (r *Replica) NotReady() bool { return r.notReady.Load() }

// SetLatency delays every reply by d.
func (r *Replica) SetLatency(d time.Duration) { r.latency.Store(int64(max(d, 0))) }

// Latency reports the SetLatency value.
func (r *Replica) Latency() time.Duration { return time.Duration(r.latency.Load()) }

// Restart listens again on the same address after Kill or Stop.
func (r *Replica) Restart() error {
	if err := r.start(); err != nil {
		return fmt.Errorf("fakemilvus: restart %s: %w", r.name, err)
	}
	return nil
}

func (r *Replica) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.run != nil {
		return errors.New("already up")
	}
	lis, err := net.Listen("tcp", r.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", r.addr, err)
	}
	r.addr = lis.Addr().String()

	ru := &run{
		lis:     lis,
		grpcLis: newChanListener(lis.Addr()),
		httpLis: newChanListener(lis.Addr()),
		conns:   make(map[net.Conn]struct{}),
	}
	ru.grpc = r.newGRPCServer()
	ru.http = &http.Server{
		Handler:           r.restHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	ru.wg.Add(3)
	go func() { defer ru.wg.Done(); _ = ru.grpc.Serve(ru.grpcLis) }()
	go func() { defer ru.wg.Done(); _ = ru.http.Serve(ru.httpLis) }()
	go func() { defer ru.wg.Done(); r.acceptLoop(ru) }()
	r.run = ru
	r.log.Info("replica up", "addr", r.addr)
	return nil
}

func (r *Replica) newGRPCServer() *grpc.Server {
	s := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout}),
		grpc.MaxRecvMsgSize(r.opts.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(MaxSendMsgSize),
		grpc.ChainUnaryInterceptor(r.unaryInterceptor),
		grpc.ChainStreamInterceptor(r.streamInterceptor),
		grpc.UnknownServiceHandler(unknownHandler),
	)
	milvuspb.RegisterMilvusServiceServer(s, r.milvus)
	healthpb.RegisterHealthServer(s, &healthServer{r: r})
	r.echo.Register(s)
	return s
}

// acceptLoop sniffs each connection and hands it to gRPC or REST.
func (r *Replica) acceptLoop(ru *run) {
	for {
		c, err := ru.lis.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Warn("accept failed", "err", err)
			}
			return
		}
		ru.track(c)
		ru.wg.Add(1)
		go func() {
			defer ru.wg.Done()
			r.dispatch(ru, c)
		}()
	}
}

func (r *Replica) dispatch(ru *run, c net.Conn) {
	isH2, peeked, err := sniff(c)
	if err != nil {
		r.log.Debug("connection closed before protocol was known", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		ru.untrack(c)
		return
	}
	mc := newMuxConn(c, peeked, func() { ru.untrack(c) })
	target := ru.httpLis
	if isH2 {
		target = ru.grpcLis
	}
	if !target.push(mc) {
		mc.Close()
	}
}

func (ru *run) track(c net.Conn) {
	ru.connsMu.Lock()
	ru.conns[c] = struct{}{}
	ru.connsMu.Unlock()
}

func (ru *run) untrack(c net.Conn) {
	ru.connsMu.Lock()
	delete(ru.conns, c)
	ru.connsMu.Unlock()
}

// closeConns closes every socket of the run. With reset, SO_LINGER 0 makes
// the kernel send RST instead of FIN, as when a process dies.
func (ru *run) closeConns(reset bool) {
	ru.connsMu.Lock()
	conns := make([]net.Conn, 0, len(ru.conns))
	for c := range ru.conns {
		conns = append(conns, c)
	}
	ru.connsMu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0)
		}
		c.Close()
		ru.untrack(c)
	}
}

// Kill stops the replica abruptly: the listener and every connection are
// reset at once, without GOAWAY, and in-flight RPCs fail on the client. It
// also cuts short a graceful Stop in progress.
func (r *Replica) Kill() {
	r.mu.Lock()
	ru := r.run
	r.run = nil
	if ru == nil {
		ru, r.draining = r.draining, nil
	}
	r.mu.Unlock()
	if ru == nil {
		return
	}
	ru.lis.Close()
	ru.closeConns(true)
	ru.grpcLis.Close()
	ru.httpLis.Close()
	ru.grpc.Stop()
	ru.http.Close()
	ru.wg.Wait()
	r.log.Info("replica killed")
}

// Stop shuts the replica down gracefully, in Milvus's order: no new
// connections, gRPC GracefulStop (GOAWAY, in-flight RPCs finish, bounded by
// StopGrace), then the REST server.
func (r *Replica) Stop() {
	r.mu.Lock()
	ru := r.run
	r.run, r.draining = nil, ru
	r.mu.Unlock()
	if ru == nil {
		return
	}
	defer func() {
		r.mu.Lock()
		if r.draining == ru {
			r.draining = nil
		}
		r.mu.Unlock()
	}()
	ru.lis.Close()
	done := make(chan struct{})
	go func() { ru.grpc.GracefulStop(); close(done) }()
	t := time.NewTimer(r.opts.StopGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		r.log.Warn("graceful stop timed out; cutting in-flight RPCs", "grace", r.opts.StopGrace)
		ru.grpc.Stop()
		<-done
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.StopGrace)
	defer cancel()
	if err := ru.http.Shutdown(ctx); err != nil {
		ru.http.Close()
	}
	ru.grpcLis.Close()
	ru.httpLis.Close()
	ru.closeConns(false) // connections still being sniffed
	ru.wg.Wait()
	r.log.Info("replica stopped")
}
