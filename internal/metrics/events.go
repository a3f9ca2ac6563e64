package metrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The events below are rare (per connection, per health transition, per
// reload), so they may resolve labels as they go.

// Ejected counts a target taken out of rotation; reason is short and from
// a fixed set (e.g. "health_check", "outlier_5xx").
func (m *Metrics) Ejected(group, target, reason string) {
	m.mu.Lock()
	m.eventTargets[targetKey{group, target}] = true
	m.mu.Unlock()
	m.ejections.WithLabelValues(group, target, reason).Inc()
}

// Retried counts a request retried on another target; reason is from a
// fixed set (e.g. "connect_failure", "refused_stream").
func (m *Metrics) Retried(group, reason string) {
	m.mu.Lock()
	m.eventGroups[group] = true
	m.mu.Unlock()
	m.retries.WithLabelValues(group, reason).Inc()
}

// FailedOpen counts a group starting to route to unhealthy targets
// because none is healthy.
func (m *Metrics) FailedOpen(group string) {
	m.mu.Lock()
	m.eventGroups[group] = true
	m.mu.Unlock()
	m.failOpen.WithLabelValues(group).Inc()
}

// Reloaded records a configuration (re)load; the start-up load counts as
// a success.
func (m *Metrics) Reloaded(ok bool, at time.Time) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.lastReloadOK.Set(1)
		m.lastReloadTime.Set(float64(at.UnixNano()) / 1e9)
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
	m.lastReloadOK.Set(0)
}

// AccessLogLine and AccessLogDropped count the access log's lines.
func (m *Metrics) AccessLogLine()    { m.accessWritten.Inc() }
func (m *Metrics) AccessLogDropped() { m.accessDropped.Inc() }

// ListenerEvents are one listener's connection and handshake counters
// (listener.Events).
type ListenerEvents struct {
	m          *Metrics
	port       string
	conns      prometheus.Gauge
	connsTotal prometheus.Counter
	rejected   prometheus.Counter
	denied     prometheus.Counter
}

// Listener returns the connection counters of the listener on port.
func (m *Metrics) Listener(port int) *ListenerEvents {
	p := strconv.Itoa(port)
	return &ListenerEvents{m: m, port: p, conns: m.conns.WithLabelValues(p), connsTotal: m.connsTotal.WithLabelValues(p),
		rejected: m.connsRejected.WithLabelValues(p), denied: m.connsDenied.WithLabelValues(p)}
}

// ConnOpened counts a client connection.
func (e *ListenerEvents) ConnOpened() {
	e.conns.Inc()
	e.connsTotal.Inc()
}

// ConnClosed counts a client connection's end.
func (e *ListenerEvents) ConnClosed() { e.conns.Dec() }

// ConnRejected counts a client connection closed at accept because the
// process had --max-conns connections open.
func (e *ListenerEvents) ConnRejected() { e.rejected.Inc() }

// ConnDenied counts a client connection reset at accept because its
// address is outside inbound-cidrs (listener.DenyEvents).
func (e *ListenerEvents) ConnDenied() { e.denied.Inc() }

// TLSHandshake counts a handshake: version on success, the reason of err
// otherwise.
func (e *ListenerEvents) TLSHandshake(version uint16, err error) {
	if err != nil {
		e.m.handshakeErrs.WithLabelValues(e.port, HandshakeErrorReason(err)).Inc()
		return
	}
	e.m.handshakes.WithLabelValues(e.port, tlsVersionName(version)).Inc()
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS10:
		return "1.0"
	}
	return "unknown"
}

// HandshakeErrorReason sorts a server-side TLS handshake error into a
// small fixed set of label values. crypto/tls exposes most causes only as
// text, hence the matching on messages.
func HandshakeErrorReason(err error) string {
	msg := err.Error()
	var ne net.Error
	if r := clientCertReason(err, msg); r != "" {
		return r
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed):
		return "client_closed"
	case strings.Contains(msg, "unsupported versions") || strings.Contains(msg, "protocol version"):
		return "protocol_version"
	case strings.Contains(msg, "no cipher suite") || strings.Contains(msg, "no mutually supported"):
		return "no_shared_cipher"
	case strings.Contains(msg, "does not look like a TLS handshake") || strings.Contains(msg, "oversized record") || strings.Contains(msg, "unexpected message"):
		return "not_tls"
	case strings.Contains(msg, "remote error") && strings.Contains(msg, "certificate"):
		// The client rejected l7lb's certificate (unknown CA, bad name).
		return "certificate_rejected"
	case strings.Contains(msg, "remote error"):
		return "client_alert"
	case strings.Contains(msg, "no application protocol"):
		return "alpn"
	}
	return "other"
}

// clientCertReason sorts the refusals of mutual authentication (verify
// mode): no certificate, one no trust store CA issued, an expired one, or
// another verification failure. "" for other errors.
func clientCertReason(err error, msg string) string {
	if strings.Contains(msg, "client didn't provide a certificate") {
		return "client_cert_missing"
	}
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		return ""
	}
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(cve.Err, &ua):
		return "client_cert_untrusted"
	case errors.As(cve.Err, &ci) && ci.Reason == x509.Expired:
		return "client_cert_expired"
	}
	return "client_cert_invalid"
}
