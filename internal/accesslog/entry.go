package accesslog

import (
	"crypto/tls"
	"time"

	"github.com/l7lb/l7lb/internal/observe"
)

// entry is what the writer needs of a finished request: a value copy, so
// the data path's record can be reused as soon as RPCDone returns.
type entry struct {
	rpc observe.RPC // TLS cleared; the fields below replace it
	tls bool
	alpn,
	sni string
	tlsVersion, cipher uint16
}

func newEntry(r *observe.RPC) entry {
	e := entry{rpc: *r}
	e.rpc.TLS = nil
	if cs := r.TLS; cs != nil {
		e.tls = true
		e.alpn, e.sni, e.tlsVersion, e.cipher = cs.NegotiatedProtocol, cs.ServerName, cs.Version, cs.CipherSuite
	}
	return e
}

// Line is one access log line. The names follow the ALB's access log
// fields where one exists (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html);
// times are seconds, -1 when the step did not happen, as the ALB writes.
type Line struct {
	Type                   string  `json:"type"`
	Time                   string  `json:"time"`
	RequestCreationTime    string  `json:"request_creation_time"`
	ListenerPort           int     `json:"listener_port"`
	Client                 string  `json:"client"`
	Target                 string  `json:"target"`
	RequestProcessingTime  float64 `json:"request_processing_time"`
	TargetProcessingTime   float64 `json:"target_processing_time"`
	ResponseProcessingTime float64 `json:"response_processing_time"`
	Duration               float64 `json:"duration"`
	ELBStatusCode          int     `json:"elb_status_code"`
	ReceivedBytes          int64   `json:"received_bytes"`
	SentBytes              int64   `json:"sent_bytes"`
	Request                string  `json:"request"`
	UserAgent              string  `json:"user_agent"`
	SSLCipher              string  `json:"ssl_cipher"`
	SSLProtocol            string  `json:"ssl_protocol"`
	DomainName             string  `json:"domain_name"`
	ChosenCertARN          string  `json:"chosen_cert_arn"`
	TargetGroup            string  `json:"target_group"`
	MatchedRule            string  `json:"matched_rule"`
	TraceID                string  `json:"trace_id"`
	TraceParent            string  `json:"traceparent"`
	GRPCService            string  `json:"grpc_service,omitempty"`
	GRPCMethod             string  `json:"grpc_method,omitempty"`
	GRPCStatus             string  `json:"grpc_status,omitempty"`
	Reset                  uint32  `json:"reset_code,omitempty"`
	ResetBy                string  `json:"reset_by,omitempty"`
	ErrorReason            string  `json:"error_reason"`
}

func seconds(from, to time.Time) float64 {
	if from.IsZero() || to.IsZero() {
		return -1
	}
	return to.Sub(from).Seconds()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// line turns an entry into its log line (on the writer goroutine).
func (e *entry) line() Line {
	r := &e.rpc
	l := Line{
		Type:                   e.kind(),
		Time:                   r.End.UTC().Format(time.RFC3339Nano),
		RequestCreationTime:    r.Start.UTC().Format(time.RFC3339Nano),
		ListenerPort:           r.ListenerPort,
		Client:                 orDash(r.ClientAddr),
		Target:                 orDash(r.Target),
		RequestProcessingTime:  seconds(r.Start, r.TargetStart),
		TargetProcessingTime:   seconds(r.TargetStart, r.TargetFirstByte),
		ResponseProcessingTime: seconds(r.TargetFirstByte, r.End),
		Duration:               seconds(r.Start, r.End),
		ELBStatusCode:          r.HTTPStatus,
		ReceivedBytes:          r.BytesIn,
		SentBytes:              r.BytesOut,
		Request:                e.request(),
		UserAgent:              orDash(r.UserAgent),
		SSLCipher:              "-",
		SSLProtocol:            "-",
		DomainName:             orDash(e.sni),
		ChosenCertARN:          orDash(r.CertARN),
		TargetGroup:            orDash(r.TargetGroup),
		MatchedRule:            orDash(r.Rule),
		TraceID:                traceID(r.TraceParent),
		TraceParent:            orDash(r.TraceParent),
		GRPCStatus:             r.GRPCStatus,
		Reset:                  r.Reset,
		ResetBy:                r.ResetBy,
		ErrorReason:            orDash(r.Error),
	}
	if e.tls {
		l.SSLCipher = tls.CipherSuiteName(e.cipher)
		l.SSLProtocol = tls.VersionName(e.tlsVersion)
	}
	if r.GRPC {
		l.GRPCService, l.GRPCMethod = splitMethod(r.Path)
	}
	return l
}

// kind is the ALB's type field: grpcs (gRPC over TLS), h2 (other HTTP/2
// over TLS), https, http; l7lb adds grpc for gRPC over h2c.
func (e *entry) kind() string {
	switch {
	case e.rpc.GRPC && e.tls:
		return "grpcs"
	case e.rpc.GRPC:
		return "grpc"
	case e.tls && e.alpn == "h2":
		return "h2"
	case e.tls:
		return "https"
	}
	return "http"
}

// request is the ALB's "METHOD scheme://host:port/path PROTO".
func (e *entry) request() string {
	r := &e.rpc
	scheme, proto := "http", "HTTP/1.1"
	if e.tls {
		scheme = "https"
	}
	if r.GRPC || e.alpn == "h2" {
		proto = "HTTP/2.0"
	}
	return orDash(r.Method) + " " + scheme + "://" + r.Authority + r.Path + " " + proto
}

// traceID is the trace-id of a W3C traceparent ("-" when there is none).
func traceID(tp string) string {
	if !observe.ValidTraceParent(tp) {
		return "-"
	}
	return tp[3:35]
}

// splitMethod splits "/package.Service/Method".
func splitMethod(path string) (service, method string) {
	if len(path) < 2 || path[0] != '/' {
		return "", ""
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '/' {
			return path[1:i], path[i+1:]
		}
	}
	return path[1:], ""
}
