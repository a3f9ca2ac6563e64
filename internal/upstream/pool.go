// Package upstream owns the connections from l7lb to targets: Conns, the
// multiplexed HTTP/2 connections (h2c, or h2 over TLS for HTTPS backends)
// that gRPC is forwarded over frame by frame, and Pool, the net/http
// transports for REST (HTTP/1.1, or HTTP/2 for HTTP2 target groups).
package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"

	"github.com/l7lb/l7lb/internal/config"
)

// Keepalive pings to a target: Milvus closes connections whose peer pings
// more often than every 5 s (GOAWAY too_many_pings), so l7lb only pings a
// connection that has been silent for pingIdle.
const (
	pingIdle    = 30 * time.Second
	pingTimeout = 10 * time.Second
	dialTimeout = 5 * time.Second
)

// Pool holds the transports to one target group's targets. Connections are
// kept per target address and reused by many concurrent streams.
type Pool struct {
	scheme string
	h2     *http2.Transport
	h1     *http.Transport
	// restOverH2 is set for HTTP2 target groups, whose REST traffic stays
	// on HTTP/2.
	restOverH2 bool
}

// New builds the transports for a target group.
func New(tg config.TargetGroup) *Pool {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	secure := tg.Protocol == config.ProtocolHTTPS
	// Like the ALB, l7lb does not verify target certificates: targets are
	// addressed by IP and usually carry self-signed certificates.
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http2.NextProtoTLS}} //nolint:gosec // ALB semantics, see above.
	p := &Pool{scheme: "http", restOverH2: tg.ProtocolVersion == config.VersionHTTP2}
	if secure {
		p.scheme = "https"
	}
	p.h2 = &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil || !secure {
				return c, err
			}
			tc := tls.Client(c, tlsConf)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
		ReadIdleTimeout:    pingIdle,
		PingTimeout:        pingTimeout,
		DisableCompression: true,
		// Bigger frames mean fewer syscalls for large Milvus messages.
		MaxReadFrameSize: 1 << 20,
	}
	h1TLS := tlsConf.Clone()
	h1TLS.NextProtos = []string{"http/1.1"}
	p.h1 = &http.Transport{
		DialContext:         dialer.DialContext,
		TLSClientConfig:     h1TLS,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		// A non-nil empty map keeps the HTTP/1.1 transport on HTTP/1.1.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return p
}

// Scheme is "http" or "https".
func (p *Pool) Scheme() string { return p.scheme }

// REST is the transport for non-gRPC requests: HTTP/1.1, as Milvus tells
// REST from gRPC on one port by protocol, unless the group speaks HTTP2.
func (p *Pool) REST() http.RoundTripper {
	if p.restOverH2 {
		return p.h2
	}
	return p.h1
}

// Close drops idle connections; busy ones close when their streams end.
func (p *Pool) Close() {
	p.h2.CloseIdleConnections()
	p.h1.CloseIdleConnections()
}
