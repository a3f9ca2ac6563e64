package h2proxy

import (
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/mtls"
	"github.com/l7lb/l7lb/internal/route"
)

// request is what the reader learned from a request's header fields. One
// per connection is reused: the fast path consumes it synchronously.
type request struct {
	method, scheme, authority, path string
	contentType, grpcTimeout, xff   string
	userAgent, traceParent          string
	contentLength                   int64
	fields                          []hpack.HeaderField
}

// parse validates a request header list as RFC 9113 §8 requires (the
// framer already checked names, pseudo-header order and duplicates).
func (r *request) parse(fields []hpack.HeaderField) http2.ErrCode {
	*r = request{fields: fields, contentLength: -1}
	for _, f := range fields {
		if f.IsPseudo() {
			switch f.Name {
			case ":method":
				r.method = f.Value
			case ":scheme":
				r.scheme = f.Value
			case ":authority":
				r.authority = f.Value
			case ":path":
				r.path = f.Value
			default: // :protocol (extended CONNECT) is not offered
				return http2.ErrCodeProtocol
			}
			continue
		}
		switch f.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return http2.ErrCodeProtocol
		case "te":
			if f.Value != "trailers" {
				return http2.ErrCodeProtocol
			}
		case "content-length":
			n, err := strconv.ParseUint(f.Value, 10, 63)
			if err != nil || (r.contentLength >= 0 && int64(n) != r.contentLength) {
				return http2.ErrCodeProtocol
			}
			r.contentLength = int64(n)
		case "content-type":
			r.contentType = f.Value
		case "grpc-timeout":
			r.grpcTimeout = f.Value
		case "user-agent":
			r.userAgent = f.Value
		case "traceparent":
			r.traceParent = f.Value
		case "host":
			if r.authority == "" {
				r.authority = f.Value
			}
		case "x-forwarded-for":
			if r.xff == "" {
				r.xff = f.Value
			} else {
				r.xff += ", " + f.Value
			}
		}
	}
	if r.method == "" {
		return http2.ErrCodeProtocol
	}
	if r.method == "CONNECT" {
		if r.scheme != "" || r.path != "" || r.authority == "" {
			return http2.ErrCodeProtocol
		}
		return 0
	}
	if r.scheme == "" || r.path == "" {
		return http2.ErrCodeProtocol
	}
	return 0
}

// routePath is :path without its query.
func (r *request) routePath() string {
	if i := strings.IndexByte(r.path, '?'); i >= 0 {
		return r.path[:i]
	}
	return r.path
}

// query is :path's query, without "?".
func (r *request) query() string {
	if i := strings.IndexByte(r.path, '?'); i >= 0 {
		return r.path[i+1:]
	}
	return ""
}

// host is what the request is routed by: :authority, or the TLS server
// name when :authority is empty or an IP literal (grpc-js sends the
// address there and the name only in SNI).
func (sc *serverConn) host(r *request) string {
	host := route.HostOnly(r.authority)
	if sc.tlsState != nil && sc.tlsState.ServerName != "" {
		if host == "" || looksLikeIP(host) {
			return sc.tlsState.ServerName
		}
	}
	return host
}

// looksLikeIP reports whether host is an IP literal; names are ruled out
// without parsing (a failed parse allocates an error).
func looksLikeIP(host string) bool {
	c := host[0]
	if (c < '0' || c > '9') && c != ':' && !strings.Contains(host, ":") {
		return false
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// forwardable reports whether a request header travels to the target.
func forwardable(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host",
		"x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "traceparent":
		return false
	}
	// A client's own X-Amzn-Mtls-* headers would let it claim a
	// certificate it never presented: only l7lb's go to the target.
	return !mtls.IsHeader(name)
}

// forwardableResponse reports whether a response header travels back.
func forwardableResponse(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return false
	}
	return true
}

// header returns the first value of a regular header field (name in
// lower case), or "".
func (r *request) header(name string) string {
	for _, f := range r.fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}
