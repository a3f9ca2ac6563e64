// Package proxy is the request path: it takes a request that a listener
// accepted, routes it by host and path to a target group, picks a target
// for this one request, and forwards it: gRPC over the group's multiplexed
// HTTP/2 pool, streaming both ways; REST over HTTP/1.1 to the same port, as
// Milvus tells the two apart by protocol.
//
// Errors the balancer makes itself are gRPC-native for gRPC requests (a
// trailers-only response with grpc-status), so SDKs see a proper status
// instead of an HTML page.
package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/grpcwire"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// Table is a listener's compiled routes.
type Table = route.Table[*targetgroup.Group]

// Handler serves one listener. It reads the current route table through
// Routes on every request, so a reload is one atomic pointer swap in the
// runtime and no lock is taken here.
type Handler struct {
	// Port is the listener's configured port (X-Forwarded-Port).
	Port int
	// Secure is true for HTTPS listeners (X-Forwarded-Proto).
	Secure bool
	// Routes returns the current table; it must be cheap (an atomic load).
	Routes func() *Table
	Log    *slog.Logger
	// Redirect, when set, returns the ssl-redirect port of this (HTTP)
	// listener now (0: none); it must be cheap (an atomic load).
	Redirect func() int

	portText string
}

// NewHandler returns a Handler for a listener.
func NewHandler(port int, secure bool, routes func() *Table, log *slog.Logger) *Handler {
	return &Handler{Port: port, Secure: secure, Routes: routes, Log: log, portText: strconv.Itoa(port)}
}

func (h *Handler) proto() string {
	if h.Secure {
		return "https"
	}
	return "http"
}

// ServeHTTP routes and forwards one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isGRPC := r.ProtoMajor == 2 && grpcwire.IsGRPC(r.Header.Get("Content-Type"))
	if h.Redirect != nil {
		if port := h.Redirect(); port != 0 {
			h.sslRedirect(w, r, port, isGRPC)
			return
		}
	}
	host := requestHost(r)
	req := route.Request{Host: host, Path: r.URL.Path, Query: r.URL.RawQuery, Method: r.Method, Header: r.Header,
		Client: remoteAddr(r), Stage: route.NoBody}
	rule, _ := h.Routes().Match(&req)
	if rule == nil {
		msg := fmt.Sprintf("l7lb: no rule for host %q and path %q on port %d", host, r.URL.Path, h.Port)
		noteError(r, msg)
		if isGRPC {
			writeGRPCError(w, codes.Unimplemented, msg)
		} else {
			http.Error(w, msg, http.StatusNotFound)
		}
		return
	}
	switch rule.Kind {
	case route.FixedResponse:
		h.fixedResponse(w, r, rule, isGRPC)
		return
	case route.Redirect:
		h.redirect(w, r, rule, host, isGRPC)
		return
	}
	g := rule.Pick()
	if rec := recordOf(r); rec != nil {
		rec.Rule, rec.TargetGroup = rule.Name, g.Name()
	}
	if isGRPC {
		if g.Config.ProtocolVersion == config.VersionHTTP1 {
			writeGRPCError(w, codes.Unavailable, fmt.Sprintf(
				"l7lb: target group %s speaks HTTP1 to its targets (alb.ingress.kubernetes.io/backend-protocol-version); gRPC needs GRPC or HTTP2", g.Name()))
			return
		}
		// gRPC over HTTP/2 is forwarded frame by frame by h2proxy, which
		// sends here only requests it could not route; one that routes now
		// met a reload in between. It was not forwarded: UNAVAILABLE is
		// safe for the client to retry.
		writeGRPCError(w, codes.Unavailable, fmt.Sprintf("l7lb: routing of %s changed while the request arrived; retry", r.URL.Path))
		return
	}
	h.forwardREST(w, r, g)
}

// requestHost is the host a request is routed by: :authority (Host), or the
// TLS server name when :authority names no host — empty, or an IP literal.
// grpc-js (the Node SDK) sends "IP:port" as :authority and puts the name
// the user gave (tls.serverName) only into SNI; pymilvus and grpc-go send
// it as :authority too.
func requestHost(r *http.Request) string {
	host := route.HostOnly(r.Host)
	if r.TLS != nil && r.TLS.ServerName != "" {
		if host == "" {
			return r.TLS.ServerName
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return r.TLS.ServerName
		}
	}
	return host
}

// writeGRPCError answers with a trailers-only gRPC response: status 200,
// content-type application/grpc and grpc-status in one HEADERS frame that
// ends the stream.
func writeGRPCError(w http.ResponseWriter, code codes.Code, msg string) {
	hd := w.Header()
	hd.Set("Content-Type", "application/grpc")
	hd.Set("Grpc-Status", grpcwire.StatusText(code))
	hd.Set("Grpc-Message", grpcwire.EncodeMessage(msg))
	w.WriteHeader(http.StatusOK)
}

// clientIP is the client's address without port, for X-Forwarded-For.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// hopByHop headers describe one connection and never cross a proxy.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Te", "Trailer"}

func isHopByHop(k string) bool {
	for _, h := range hopByHop {
		if k == h {
			return true
		}
	}
	return false
}

// sslRedirect answers on an ssl-redirect HTTP listener: a 301 to the same
// host, path and query on HTTPS port, as the ALB's redirect action
// (#{host}, #{path}, #{query}; the port is left out when it is 443). A
// gRPC client does not follow redirects, and plaintext gRPC on a port
// meant to send everyone to TLS would defeat it, so gRPC gets
// UNIMPLEMENTED with a message saying where to connect.
func (h *Handler) sslRedirect(w http.ResponseWriter, r *http.Request, port int, isGRPC bool) {
	host := route.HostOnly(r.Host)
	if isGRPC {
		msg := fmt.Sprintf("l7lb: port %d redirects to HTTPS (alb.ingress.kubernetes.io/ssl-redirect); connect with TLS to port %d", h.Port, port)
		noteError(r, msg)
		writeGRPCError(w, codes.Unimplemented, msg)
		return
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != 443 {
		host += ":" + strconv.Itoa(port)
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
}
