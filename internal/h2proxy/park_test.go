package h2proxy

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/idlepark"
	"github.com/l7lb/l7lb/internal/listener"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/proxy"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// parkEnv is a TLS listener in front of the h2proxy server, with the
// server's idle timeout chosen by the test, counting closed connections.
type parkEnv struct {
	srv    *Server
	ln     *listener.Listener
	roots  *x509.CertPool
	closed atomic.Int64
}

type closeCounter struct{ n *atomic.Int64 }

func (closeCounter) ConnOpened()                {}
func (c closeCounter) ConnClosed()              { c.n.Add(1) }
func (closeCounter) ConnRejected()              {}
func (closeCounter) TLSHandshake(uint16, error) {}

func startParkEnv(t *testing.T, idle time.Duration) *parkEnv {
	t.Helper()
	ca, err := pki.NewCA("park test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"milvus.test"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	set, err := listener.NewCertSet([]listener.Cert{{ARN: "arn:test", TLS: leaf.TLSCertificate()}})
	if err != nil {
		t.Fatal(err)
	}
	var certs atomic.Pointer[listener.CertSet]
	certs.Store(set)
	target := grpcTarget(t)
	host, port, _ := net.SplitHostPort(target)
	p, _ := strconv.Atoi(port)
	log := slog.New(slog.DiscardHandler)
	g := targetgroup.New(config.TargetGroup{
		Name: "ns/svc:19530", Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC,
		MaxMessageBytes: config.DefaultMaxMessageBytes, Endpoints: []config.Endpoint{{Address: host, Port: p, Ready: true}},
	}, log, nil)
	t.Cleanup(g.Close)
	table := route.Compile([]config.Rule{{Name: "r", Path: "/", PathType: config.PathPrefix, TargetGroup: "ns/svc:19530"}},
		func(string) *targetgroup.Group { return g })
	e := &parkEnv{roots: ca.Pool()}
	e.srv = New(Options{Routes: func() *proxy.Table { return table }, Port: 443, Secure: true, Log: log, IdleTimeout: idle})
	e.ln, err = listener.Listen(listener.Options{Addr: "127.0.0.1:0", Certs: &certs, H2: e.srv, Log: log, IdleTimeout: idle, Events: closeCounter{&e.closed}})
	if err != nil {
		t.Fatal(err)
	}
	go e.ln.Serve()
	t.Cleanup(func() { e.ln.Shutdown(context.Background()) })
	return e
}

func waitParked(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(parkAfter + 5*time.Second)
	for idlepark.Default.Parked() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d connections parked, want %d", what, idlepark.Default.Parked(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An idle connection parks, wakes for the next RPC, answers it, and parks
// again; a PING wakes it too.
func TestParkedConnectionServesAgain(t *testing.T) {
	e := startParkEnv(t, time.Minute)
	c := dialIdle(t, e.ln.Addr().String(), e.roots)
	defer c.conn.Close()
	waitParked(t, 1, "after the first RPC")
	for round := 0; round < 3; round++ {
		if err := c.ping(); err != nil {
			t.Fatalf("round %d: a parked connection did not answer a PING: %v", round, err)
		}
		if err := c.rpc(uint32(3 + 2*round)); err != nil {
			t.Fatalf("round %d: RPC on a parked connection: %v", round, err)
		}
		waitParked(t, 1, "after another RPC")
	}
}

// The idle timeout closes a parked connection: the client gets GOAWAY and
// EOF, the listener counts the connection closed, nothing stays parked.
func TestParkedConnectionIdleTimeout(t *testing.T) {
	e := startParkEnv(t, parkAfter+time.Second)
	c := dialIdle(t, e.ln.Addr().String(), e.roots)
	defer c.conn.Close()
	waitParked(t, 1, "idle")
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	goaway := false
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			break
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			goaway = true
		}
	}
	if !goaway {
		t.Error("no GOAWAY before the idle connection was closed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.closed.Load() != 1 || idlepark.Default.Parked() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the idle timeout: %d connections counted closed (want 1), %d parked (want 0)", e.closed.Load(), idlepark.Default.Parked())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A graceful shutdown ends parked connections too, well within its time.
func TestShutdownWithParkedConnections(t *testing.T) {
	e := startParkEnv(t, time.Minute)
	var cs []*idleClient
	for i := 0; i < 5; i++ {
		cs = append(cs, dialIdle(t, e.ln.Addr().String(), e.roots))
	}
	waitParked(t, 5, "idle")
	// Clients that answer the shutdown's PING, as real ones do.
	for _, c := range cs {
		go func() {
			for {
				f, err := c.fr.ReadFrame()
				if err != nil {
					return
				}
				if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
					c.fr.WritePing(true, p.Data)
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.ln.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with parked connections: %v after %v", err, time.Since(start))
	}
	if e.closed.Load() != 5 || idlepark.Default.Parked() != 0 {
		t.Fatalf("after shutdown: %d closed (want 5), %d parked", e.closed.Load(), idlepark.Default.Parked())
	}
	for _, c := range cs {
		c.conn.Close()
	}
}
