// Package h2proxy is l7lb's HTTP/2 data path. It serves client HTTP/2
// connections frame by frame and splices each gRPC stream onto a stream of
// a multiplexed connection to the target picked for that one RPC: headers
// are re-encoded (HPACK is per connection), DATA and trailers pass as they
// arrive, RST_STREAM codes pass unchanged, and flow control is end to end
// (a client gets window back as its bytes leave toward the target, and a
// target as its bytes reach the client), so nothing is held whole and
// memory stays bounded by the windows.
//
// There is no goroutine per stream: each connection has one reader and
// one writer goroutine, and writes of many streams share syscalls.
// Streams that are not gRPC for a gRPC target group (Milvus REST, health
// pages, anything else) go to a fallback http.Handler through a small
// bridge.
package h2proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/l7lb/l7lb/internal/mtls"
	"github.com/l7lb/l7lb/internal/observe"
	"github.com/l7lb/l7lb/internal/proxy"
)

// Limits a connection is held to. The flood limits count per second:
// legitimate clients stay far below them (SDKs ping every 5-10 s).
const (
	maxConcurrentStreams = 1000
	streamRecvWindow     = 1 << 20
	connRecvWindow       = 16 << 20
	maxHeaderListSize    = 64 << 10
	floodLimitPerSecond  = 1000
	// rapidReset: a client reset this soon after the request, before any
	// response, counts toward the rapid-reset limit.
	rapidReset = 100 * time.Millisecond
	// respWindowMax is the most response window one stream's target gets
	// (a large reply streams at full speed within it); the connection's
	// budget (Limits.ConnBuffer) decides how many streams get that much.
	respWindowMax = 1 << 20
)

// Options configure a Server.
type Options struct {
	// Routes returns the listener's current route table (an atomic load).
	Routes func() *proxy.Table
	// NoParking keeps a goroutine blocked in Read on every connection,
	// even idle ones (see idlepark).
	NoParking bool
	// Fallback serves streams that are not forwarded frame by frame.
	Fallback http.Handler
	// Port and Secure describe the listener (X-Forwarded-Port/-Proto).
	Port   int
	Secure bool
	Log    *slog.Logger
	// IdleTimeout closes connections without streams (0 = 60 s).
	IdleTimeout time.Duration
	// Observer sees every finished request (nil: nobody).
	Observer observe.Observer
	// Limits bound what one client connection may hold in l7lb.
	Limits Limits
}

// Limits bound what one client connection may cost, however its client
// behaves. Zero fields take the defaults.
type Limits struct {
	// ConnBuffer is how many response bytes l7lb holds at most for one
	// client connection: the window it grants targets for that
	// connection's streams, queued or still on its way (default 16 MiB).
	ConnBuffer int64
	// WriteStall closes a client connection that has response bytes
	// waiting and took none of them for this long: it stopped reading,
	// or granted no window (default 30 s).
	WriteStall time.Duration
}

// Defaults for Limits.
const (
	DefaultConnBuffer = 16 << 20
	DefaultWriteStall = 30 * time.Second
)

// Server serves HTTP/2 connections for one listener.
type Server struct {
	opts     Options
	portText string

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	shutting bool
	wg       sync.WaitGroup
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.Observer == nil {
		opts.Observer = observe.Nop{}
	}
	if opts.Limits.ConnBuffer <= 0 {
		opts.Limits.ConnBuffer = DefaultConnBuffer
	}
	if opts.Limits.WriteStall <= 0 {
		opts.Limits.WriteStall = DefaultWriteStall
	}
	return &Server{opts: opts, portText: itoa(opts.Port), conns: map[*serverConn]struct{}{}}
}

// ServeConn serves one connection whose client preface has not been read
// yet; it returns when the connection is done.
func (s *Server) ServeConn(c net.Conn) {
	done := make(chan struct{})
	s.ServeConnAsync(c, func() { close(done) })
	<-done
}

// ServeConnAsync serves c and calls done, once, when the connection is
// over. It may return before that: an idle TLS connection parks (waits
// for its next byte with no goroutine; see idlepark), and its reader
// starts again on a new goroutine, so that an idle connection does not
// keep the caller's goroutine and stack either.
func (s *Server) ServeConnAsync(c net.Conn, done func()) {
	s.ServeConnAsyncHeaders(c, nil, done)
}

// ServeConnAsyncHeaders is ServeConnAsync for a connection whose requests
// carry extra headers to the target: the ALB's X-Amzn-Mtls-* headers,
// computed once after the connection's TLS handshake.
func (s *Server) ServeConnAsyncHeaders(c net.Conn, hdrs []mtls.Header, done func()) {
	sc := newServerConn(s, c)
	sc.mtls = hdrs
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		c.Close()
		done()
		return
	}
	s.conns[sc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	sc.done = func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
		s.wg.Done()
		done()
	}
	sc.serve()
}

// Shutdown sends GOAWAY on every connection, lets the streams in flight
// finish until ctx ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting = true
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	for _, sc := range conns {
		sc.goAway()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sc := range s.conns {
			sc.w.Close()
			sc.closeConn()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// ConnFlow is one client connection's flow-control state right now, for
// tests and status pages.
type ConnFlow struct {
	Client string
	// Streams is how many streams l7lb still tracks on the connection.
	Streams int
	// SendWindow is what l7lb may still send on the connection.
	SendWindow int64
	// RecvWindow is what the client may still send on the connection,
	// counting credit l7lb owes it but has not sent yet; with no stream
	// open it equals RecvWindowInitial.
	RecvWindow, RecvWindowInitial int64
	// RespGranted is the response window targets hold for this
	// connection's streams (0 with no stream open); it is at most
	// Limits.ConnBuffer plus a small floor per stream.
	RespGranted int64
	// Queued is what the writer holds for the socket.
	Queued int
}

// Flow reports every open connection's flow-control state.
func (s *Server) Flow() []ConnFlow {
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	out := make([]ConnFlow, 0, len(conns))
	for _, sc := range conns {
		out = append(out, sc.flow())
	}
	return out
}
