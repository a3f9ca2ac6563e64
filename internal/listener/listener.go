// Package listener accepts client connections for one port: TLS with SNI
// certificate selection and ALPN (h2, http/1.1) on HTTPS ports; on HTTP
// ports it tells HTTP/2 with prior knowledge (gRPC's h2c) from HTTP/1.1 by
// the connection preface. Requests go to an http.Handler (the proxy).
package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/l7lb/l7lb/internal/mtls"
	"github.com/l7lb/l7lb/internal/sockio"
	"github.com/l7lb/l7lb/internal/tlspolicy"
)

const (
	handshakeTimeout = 10 * time.Second
	// lingerTimeout and lingerMax bound how long, and how many bytes, a
	// connection whose handshake failed is drained after its alert (see
	// lingerClose); the slot it holds under --max-conns is held as long.
	lingerTimeout = time.Second
	lingerMax     = 256 << 10
	// clientPreface is what an HTTP/2 client sends first (RFC 9113 §3.4).
	clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// Options configure a Listener.
type Options struct {
	// Addr to listen on, "host:port". An empty host is the IPv4 wildcard;
	// DualStack decides about IPv6 (see bindPlan).
	Addr string
	// DualStack also listens on IPv6 (ip-address-type dualstack): on [::]
	// when Addr is the IPv4 wildcard, on [::1] when it is 127.0.0.1, at
	// the same port.
	DualStack bool
	// TLSPolicy is the security policy of an HTTPS listener (versions and
	// TLS 1.0–1.2 ciphers); the zero Policy means tlspolicy.Default.
	TLSPolicy tlspolicy.Policy
	// ClientAuth is the mutual authentication of an HTTPS listener
	// (mutual-authentication); nil is off.
	ClientAuth *mtls.Config
	// Inbound, when non-nil, is the only client networks accepted
	// (inbound-cidrs); others are reset at accept.
	Inbound *Inbound
	// Certs, when non-nil, makes this an HTTPS listener. The pointer is
	// read on every handshake, so certificates can change without
	// re-listening.
	Certs   *atomic.Pointer[CertSet]
	Handler http.Handler
	Log     *slog.Logger
	// IdleTimeout closes connections that have had no stream for this
	// long (the ALB's idle_timeout.timeout_seconds, default 60 s).
	IdleTimeout time.Duration
	// H2 serves HTTP/2 connections (h2 by ALPN, or h2c by preface).
	H2 H2Server
	// Events, when set, hears about connections and TLS handshakes (for
	// metrics); its methods must be quick.
	Events Events
	// Conns, when set, caps the client connections of every listener
	// sharing it: past the cap a new connection is closed as soon as it
	// is accepted (--max-conns).
	Conns *ConnLimit
	// HTTP1 bounds the HTTP/1.1 server's requests (zero: defaults).
	HTTP1 HTTP1Limits
}

// Events are told about each client connection and TLS handshake.
type Events interface {
	ConnOpened()
	ConnClosed()
	// ConnRejected: a connection was accepted and closed at once because
	// Options.Conns was full. It is not counted by ConnOpened.
	ConnRejected()
	// TLSHandshake gives the negotiated version, or the handshake's error.
	TLSHandshake(version uint16, err error)
}

// DenyEvents may be implemented by an Events to hear about connections
// reset at accept because the client's address is outside Options.Inbound
// (they are not counted by ConnOpened either). It is a separate interface
// so that Events implementations that do not care need not change.
type DenyEvents interface {
	ConnDenied()
}

// H2Server serves HTTP/2 connections (the data path's frame-level engine).
type H2Server interface {
	ServeConn(net.Conn)
	Shutdown(context.Context) error
}

// AsyncH2Server is an H2Server that can finish a connection after
// ServeConnAsync returned: it calls done, once, when the connection is
// over. An idle connection then keeps no goroutine of the listener's
// either (h2proxy parks idle connections).
type AsyncH2Server interface {
	ServeConnAsync(c net.Conn, done func())
}

// HeaderH2Server is an AsyncH2Server that can add a connection's mTLS
// headers (computed once, after its handshake) to every request it
// forwards. A listener with mutual authentication on needs one.
type HeaderH2Server interface {
	ServeConnAsyncHeaders(c net.Conn, h []mtls.Header, done func())
}

// tlsSetup is what new handshakes use: the configuration and the mutual
// authentication it was built with (which says what headers a finished
// handshake gives).
type tlsSetup struct {
	cfg  *tls.Config
	auth *mtls.Config
}

// Listener serves one port until Shutdown.
type Listener struct {
	opts    Options
	ln      net.Listener // the IPv4 (or only) socket
	plan    bindPlan
	h1      *http.Server
	h1conns *connQueue
	// tls is what new handshakes use; SetTLSPolicy and SetClientAuth
	// replace it (under tlsMu, which guards policy and auth).
	tls     atomic.Pointer[tlsSetup]
	tlsMu   sync.Mutex
	policy  tlspolicy.Policy
	auth    *mtls.Config
	inbound atomic.Pointer[Inbound]

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	quit   chan struct{} // closed with closed: ends an accept back-off
	wg     sync.WaitGroup
	// v6 is the IPv6 socket of a dualstack listener (nil: none); serving
	// says Serve has started, so a socket added later gets its accept
	// loop at once. twins counts those loops.
	v6      net.Listener
	serving bool
	twins   sync.WaitGroup

	acceptWarn everySecond
	denyWarn   everySecond
	denied     atomic.Int64 // since the last log line
}

// Listen binds the address. Serve must be called to accept connections.
func Listen(opts Options) (*Listener, error) {
	if opts.H2 == nil {
		return nil, fmt.Errorf("listen on %s: no HTTP/2 server given", opts.Addr)
	}
	plan, err := planBind(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	if opts.Certs != nil && opts.TLSPolicy.Name == "" {
		if opts.TLSPolicy, err = tlspolicy.Lookup(tlspolicy.Default); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen(plan.network, plan.addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", plan.addr, err)
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	l := &Listener{opts: opts, ln: ln, plan: plan, conns: map[net.Conn]struct{}{}, quit: make(chan struct{})}
	l.inbound.Store(opts.Inbound)
	if opts.DualStack {
		if err := l.SetDualStack(true); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on %s: %w", plan.addr, err)
		}
	}
	l.h1conns = newConnQueue(ln.Addr())
	if opts.Certs != nil {
		l.auth = opts.ClientAuth
		l.SetTLSPolicy(opts.TLSPolicy)
	}
	h1 := opts.HTTP1.withDefaults()
	l.h1 = &http.Server{
		Handler:           opts.Handler,
		ReadHeaderTimeout: h1.ReadHeaderTimeout,
		ReadTimeout:       h1.ReadTimeout,
		WriteTimeout:      h1.WriteTimeout,
		MaxHeaderBytes:    h1.MaxHeaderBytes,
		IdleTimeout:       opts.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(opts.Log.Handler(), slog.LevelDebug),
		// HTTP/2 connections are handed to l.h2 by this package, never
		// through net/http's own upgrade path.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// A connection's mTLS headers reach the handler in its context.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*trackedConn); ok && tc.hdrs != nil {
				return mtls.NewContext(ctx, tc.hdrs)
			}
			return ctx
		},
	}
	return l, nil
}

// Addr is the bound address of the IPv4 (or only) socket (useful with
// port 0).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Addrs are the bound addresses of every socket: the IPv4 (or only) one,
// then the IPv6 one of a dualstack listener.
func (l *Listener) Addrs() []net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []net.Addr{l.ln.Addr()}
	if l.v6 != nil {
		out = append(out, l.v6.Addr())
	}
	return out
}

// SetTLSPolicy makes new TLS handshakes use policy p; handshakes done
// keep what they negotiated.
func (l *Listener) SetTLSPolicy(p tlspolicy.Policy) {
	l.tlsMu.Lock()
	defer l.tlsMu.Unlock()
	l.policy = p
	l.rebuildTLS()
}

// SetClientAuth makes new TLS handshakes use mutual authentication c
// (nil: off); connections already established keep what their handshake
// checked, and the headers it gave.
func (l *Listener) SetClientAuth(c *mtls.Config) {
	l.tlsMu.Lock()
	defer l.tlsMu.Unlock()
	l.auth = c
	l.rebuildTLS()
}

// rebuildTLS makes the configuration new handshakes use; under tlsMu.
func (l *Listener) rebuildTLS() {
	c := l.policy.TLSConfig()
	c.NextProtos = []string{http2.NextProtoTLS, "http/1.1"}
	certs := l.opts.Certs
	c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, _ := certs.Load().Select(hello.ServerName)
		return cert, nil
	}
	l.auth.Apply(c)
	l.tls.Store(&tlsSetup{cfg: c, auth: l.auth})
}

// SetInbound makes the accept loops admit only clients in (nil: all) from
// now on; open connections are left alone, as a security group change
// leaves established flows.
func (l *Listener) SetInbound(in *Inbound) { l.inbound.Store(in) }

// SetDualStack adds or removes the IPv6 socket (see Options.DualStack).
// Removing it closes only that socket: connections it accepted go on. A
// bind address without an IPv6 twin takes no IPv6 socket; that is logged,
// not an error.
func (l *Listener) SetDualStack(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
	case on && l.v6 == nil && l.plan.twinHost == "":
		l.opts.Log.Warn("ip-address-type dualstack: this listener binds one address explicitly, which has no IPv6 twin; it takes no IPv6 clients",
			"addr", l.ln.Addr().String())
	case on && l.v6 == nil:
		ln, err := listenTwin(l.plan.twinHost, l.ln.Addr())
		if err != nil {
			return err
		}
		l.v6 = ln
		if l.serving {
			l.startTwin(ln)
		}
	case !on && l.v6 != nil:
		l.v6.Close()
		l.v6 = nil
	}
	return nil
}

// startTwin runs the IPv6 socket's accept loop; l.mu is held.
func (l *Listener) startTwin(ln net.Listener) {
	l.twins.Add(1)
	go func() {
		defer l.twins.Done()
		if err := l.acceptLoop(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.opts.Log.Error("the IPv6 socket of a dualstack listener stopped accepting", "addr", ln.Addr().String(), "error", err)
		}
	}()
}

// Serve accepts connections until Shutdown. It always returns a non-nil
// error; after Shutdown, http.ErrServerClosed.
func (l *Listener) Serve() error {
	go l.h1.Serve(l.h1conns) //nolint:errcheck // ends with the queue
	l.mu.Lock()
	l.serving = true
	if l.v6 != nil && !l.closed {
		l.startTwin(l.v6)
	}
	l.mu.Unlock()
	return l.acceptLoop(l.ln)
}

// acceptLoop accepts on one socket until the listener shuts down (then it
// returns http.ErrServerClosed), the socket was removed by SetDualStack
// (nil), or accept fails for good (that error).
func (l *Listener) acceptLoop(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if l.isClosed() {
				return http.ErrServerClosed
			}
			if l.removed(ln) {
				return nil
			}
			if !retryAccept(err) {
				return err
			}
			// Out of file descriptors (or kernel memory): the pending
			// connection stays in the backlog, so retrying at once would
			// spin. Back off 5 ms, doubling up to 1 s, as net/http does.
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			if l.acceptWarn.allow(time.Now()) {
				l.opts.Log.Warn("accept failed; retrying", "addr", ln.Addr().String(), "error", err, "delay", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.quit:
				t.Stop()
			}
			continue
		}
		delay = 0
		// inbound-cidrs first: a client the security group would keep
		// out takes no connection slot and never reaches TLS.
		if in := l.inbound.Load(); in != nil && !in.Allows(c.RemoteAddr()) {
			l.deny(c)
			continue
		}
		if cl := l.opts.Conns; cl != nil && !cl.acquire() {
			l.reject(c)
			continue
		}
		if !l.track(c, true) {
			c.Close()
			if l.opts.Conns != nil {
				l.opts.Conns.release()
			}
			continue
		}
		l.wg.Add(1)
		go l.handle(c)
	}
}

// Accept back-off bounds.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// retryAccept tells accept errors that pass (a resource running out) from
// those that end the listener.
func retryAccept(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// reject closes a connection accepted past the cap at once, with a reset
// (SO_LINGER 0) so that no socket lingers in TIME_WAIT for it; the client
// sees a reset, which gRPC clients retry as UNAVAILABLE.
func (l *Listener) reject(c net.Conn) {
	if ev := l.opts.Events; ev != nil {
		ev.ConnRejected()
	}
	l.opts.Conns.reject(l.Addr().String())
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) //nolint:errcheck // best effort; Close follows
	}
	c.Close()
}

// deny resets a connection from outside inbound-cidrs at once (SO_LINGER
// 0: no TIME_WAIT, and the client sees a reset rather than a connection
// that opened and said nothing), counts it and logs, at most once a
// second, how many were denied since the last line.
func (l *Listener) deny(c net.Conn) {
	if ev, ok := l.opts.Events.(DenyEvents); ok {
		ev.ConnDenied()
	}
	n := l.denied.Add(1)
	if l.denyWarn.allow(time.Now()) {
		l.opts.Log.Warn("client connection denied: its address is outside inbound-cidrs",
			"client", c.RemoteAddr().String(), "listener", l.Addr().String(), "inbound_cidrs", l.inbound.Load().String(), "denied", n)
		l.denied.Add(-n)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) //nolint:errcheck // best effort; Close follows
	}
	c.Close()
}

// removed reports whether ln is an IPv6 socket SetDualStack took away.
func (l *Listener) removed(ln net.Listener) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ln != l.ln && ln != l.v6
}

func (l *Listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *Listener) track(c net.Conn, add bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if add {
		if l.closed {
			return false
		}
		l.conns[c] = struct{}{}
	} else {
		delete(l.conns, c)
	}
	return true
}

// handle does the TLS handshake or preface sniffing, then serves the
// connection with HTTP/2 or hands it to the HTTP/1.1 server.
func (l *Listener) handle(raw net.Conn) {
	handedOff := false // net/http closes the connection itself
	async := false     // the HTTP/2 server calls finish when it is over
	ev := l.opts.Events
	if ev != nil {
		ev.ConnOpened()
	}
	finish := func() {
		if !handedOff {
			raw.Close()
		}
		l.track(raw, false)
		if l.opts.Conns != nil {
			l.opts.Conns.release()
		}
		if ev != nil {
			ev.ConnClosed()
		}
		l.wg.Done()
	}
	defer func() {
		if !async {
			finish()
		}
	}()
	var c net.Conn = raw
	isH2 := false
	var hdrs []mtls.Header // the connection's mTLS headers, for every request
	sock := sockio.Wrap(raw)
	if l.opts.Certs != nil {
		setup := l.tls.Load()
		tc := tls.Server(sock, setup.cfg)
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if ev != nil {
			ev.TLSHandshake(tc.ConnectionState().Version, err)
		}
		if err != nil {
			l.opts.Log.Debug("TLS handshake failed", "client", raw.RemoteAddr().String(), "error", err)
			if !isTimeout(err) {
				lingerClose(raw, lingerTimeout, lingerMax)
			}
			return
		}
		c = tc
		st := tc.ConnectionState()
		isH2 = st.NegotiatedProtocol == http2.NextProtoTLS
		hdrs = mtls.Headers(setup.auth.ModeOf(), &st)
	} else {
		raw.SetReadDeadline(time.Now().Add(handshakeTimeout))
		br := bufio.NewReaderSize(sock, 4096)
		proto := sniff(br)
		raw.SetReadDeadline(time.Time{})
		if proto == protoUnknown {
			// Neither the HTTP/2 preface nor an HTTP/1.x request line: an
			// HTTP/2 client with a broken preface, or garbage. Closing is
			// the answer RFC 9113 §3.4 allows, and an HTTP/1.1 error page
			// would only confuse an HTTP/2 peer.
			return
		}
		isH2 = proto == protoH2
		c = &peekedConn{Conn: sock, r: br}
	}
	if !isH2 {
		// net/http owns the connection from here and closes it itself.
		if done := l.h1conns.push(c, hdrs); done != nil {
			handedOff = true
			<-done
		}
		return
	}
	if hs, ok := l.opts.H2.(HeaderH2Server); ok && hdrs != nil {
		async = true
		var once sync.Once
		hs.ServeConnAsyncHeaders(c, hdrs, func() { once.Do(finish) })
		return
	}
	if as, ok := l.opts.H2.(AsyncH2Server); ok {
		async = true
		var once sync.Once
		as.ServeConnAsync(c, func() { once.Do(finish) })
		return
	}
	l.opts.H2.ServeConn(c)
}

// Shutdown stops accepting, asks every connection to finish (GOAWAY on
// HTTP/2, close-after-response on HTTP/1.1) and waits for in-flight
// requests until ctx ends; then it closes what is left.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.quit)
	}
	if l.v6 != nil {
		l.v6.Close()
	}
	l.mu.Unlock()
	l.ln.Close()
	l.twins.Wait()
	l.h1conns.close()
	var h2err error
	h2done := make(chan struct{})
	go func() {
		defer close(h2done)
		h2err = l.opts.H2.Shutdown(ctx)
	}()
	err := l.h1.Shutdown(ctx)
	<-h2done
	if err == nil {
		err = h2err
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// lingerClose ends a connection whose TLS handshake failed after the alert
// was written. A TLS 1.3 client ends its side of the handshake before the
// server has checked its certificate and (gRPC does) writes at once; if
// l7lb closed the socket with those bytes unread, or while they are still
// on their way, the kernel would answer with a reset, and the client
// would report "broken pipe" or "connection reset" instead of the
// certificate_required or bad_certificate alert. So l7lb half-closes
// (the client reads the alert, then end of stream) and discards what the
// client still sends, until it closes or for at most d and max bytes.
func lingerClose(c net.Conn, d time.Duration, max int64) {
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if c.SetReadDeadline(time.Now().Add(d)) != nil {
		return
	}
	io.CopyN(io.Discard, c, max) //nolint:errcheck // EOF, the deadline or a reset all end the drain
}

// isTimeout reports whether a handshake ended for want of time (the client
// sent nothing more): there is nothing to drain then.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
