// Package observe is the seam between the request path and whatever
// watches it (metrics, access logs, the admin API): the data path fills
// one RPC record per request, embedded in its own state so that recording
// allocates nothing, and hands it to an Observer when the request ends.
package observe

import (
	"crypto/tls"
	"time"
)

// RPC describes one finished request (gRPC call or HTTP request).
// Observers must not keep the pointer: copy what they need.
type RPC struct {
	Start time.Time // request headers arrived
	// TargetStart is when the request went to the target, TargetFirstByte
	// when the target's response headers arrived (zero if never).
	TargetStart, TargetFirstByte time.Time
	End                          time.Time

	ListenerPort int
	Rule         string // "namespace/ingress#N"; "" when no rule matched
	TargetGroup  string
	Target       string // "ip:port"; "" when never forwarded

	Method    string // HTTP method
	Path      string // ":path", for gRPC "/package.Service/Method"
	Authority string
	GRPC      bool

	HTTPStatus int    // response :status; 0 when none was sent
	GRPCStatus string // grpc-status of the trailers (or trailers-only); "" if none
	// Reset is the RST_STREAM code when the stream was reset instead of
	// completed (by the client, the target, or l7lb); 0 otherwise.
	Reset    uint32
	ResetBy  string // "client", "target" or "l7lb"
	BytesIn  int64  // request body bytes received from the client
	BytesOut int64  // response body bytes sent to the client

	ClientAddr  string
	UserAgent   string
	TraceParent string // W3C traceparent as sent upstream
	TLS         *tls.ConnectionState
	CertARN     string
	// Error says why l7lb ended the request itself (its own gRPC status
	// or HTTP error), empty otherwise.
	Error string
}

// Observer receives finished requests. RPCDone is called from the data
// path's goroutines, once per request, and must be quick and must not
// block.
type Observer interface {
	RPCDone(*RPC)
}

// Nop observes nothing.
type Nop struct{}

// RPCDone implements Observer.
func (Nop) RPCDone(*RPC) {}
