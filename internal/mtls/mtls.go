// Package mtls is the ALB's mutual TLS for one listener: how the TLS
// handshake asks for (passthrough) or demands and verifies (verify) a
// client certificate, and the X-Amzn-Mtls-* headers that tell the target
// what the client presented. The headers of a connection are computed once,
// after its handshake, and added to every request it carries.
package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
)

// Mode is the ALB's mutual authentication mode.
type Mode string

const (
	// ModeOff: no client certificate is asked for (the default).
	ModeOff Mode = "off"
	// ModePassthrough: a client certificate is asked for but not
	// verified; the chain the client sent goes to the target in
	// X-Amzn-Mtls-Clientcert.
	ModePassthrough Mode = "passthrough"
	// ModeVerify: a client certificate valid against the trust store is
	// required at the handshake; its details go to the target.
	ModeVerify Mode = "verify"
)

// Config is one listener's mutual authentication, resolved: the trust
// store is loaded. It is immutable once built.
type Config struct {
	Mode Mode
	// TrustStore is the ARN (or name) the pool came from, for logs.
	TrustStore string
	// Pool holds the trust store's CA certificates (verify only).
	Pool *x509.CertPool
	// IgnoreExpiry accepts an expired client certificate that is
	// otherwise valid (ignoreClientCertificateExpiry); the CAs must still
	// be valid.
	IgnoreExpiry bool
	// AdvertiseCANames sends the trust store's CA names in the
	// CertificateRequest (advertiseTrustStoreCaNames "on"); off by
	// default, as on the ALB.
	AdvertiseCANames bool
}

// ModeOf is c's mode; nil is off.
func (c *Config) ModeOf() Mode {
	if c == nil || c.Mode == "" {
		return ModeOff
	}
	return c.Mode
}

// Apply sets the client authentication of tc (a listener's server
// configuration) for c; a nil c leaves it off.
func (c *Config) Apply(tc *tls.Config) {
	switch c.ModeOf() {
	case ModePassthrough:
		tc.ClientAuth = tls.RequestClientCert
	case ModeVerify:
		// l7lb verifies itself rather than with RequireAndVerifyClientCert:
		// crypto/tls would then always send the trust store's CA names in
		// its CertificateRequest (and a client whose certificate is of
		// another CA would send none), while the ALB sends them only with
		// advertiseTrustStoreCaNames on. Every refusal is a bad_certificate
		// alert, or certificate_required when no certificate came.
		tc.ClientAuth = tls.RequireAnyClientCert
		if c.AdvertiseCANames {
			tc.ClientCAs = c.Pool
		}
		pool, ignore := c.Pool, c.IgnoreExpiry
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verify(raw, pool, ignore, time.Now())
		}
	}
}

// verify checks a client chain as crypto/tls would (client auth usage,
// intermediates as sent). With ignoreExpiry an expired leaf passes: the
// chain is checked at the leaf's NotAfter, and its CAs must also be valid
// now. Errors have crypto/tls's type.
func verify(raw [][]byte, pool *x509.CertPool, ignoreExpiry bool, now time.Time) error {
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("tls: failed to parse client certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return fmt.Errorf("tls: client didn't provide a certificate")
	}
	leaf := certs[0]
	at := now
	if ignoreExpiry && at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	opts := x509.VerifyOptions{Roots: pool, CurrentTime: at, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	if at.Equal(now) {
		return nil
	}
	// Checked in the past: the CAs of some chain must be valid now.
	for _, chain := range chains {
		if validNow(chain[1:], now) {
			return nil
		}
	}
	return &tls.CertificateVerificationError{UnverifiedCertificates: certs,
		Err: x509.CertificateInvalidError{Cert: chains[0][len(chains[0])-1], Reason: x509.Expired, Detail: "a CA of the client certificate is not valid now"}}
}

func validNow(cas []*x509.Certificate, now time.Time) bool {
	for _, c := range cas {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return false
		}
	}
	return true
}

// Header is one request header for the target; Name is lower case (HTTP/2).
type Header struct {
	Name, Value string
}

// The ALB's header names, lower case.
const (
	HeaderClientCert   = "x-amzn-mtls-clientcert"
	HeaderSerialNumber = "x-amzn-mtls-clientcert-serial-number"
	HeaderIssuer       = "x-amzn-mtls-clientcert-issuer"
	HeaderSubject      = "x-amzn-mtls-clientcert-subject"
	HeaderValidity     = "x-amzn-mtls-clientcert-validity"
	HeaderLeaf         = "x-amzn-mtls-clientcert-leaf"
	headerPrefix       = "x-amzn-mtls-"
)

// IsHeader reports whether a lower-case header name is one of the ALB's
// mTLS headers (or claims to be: any x-amzn-mtls-*). Clients' copies are
// dropped on every listener, so that a target can trust what it gets.
func IsHeader(name string) bool {
	return len(name) >= len(headerPrefix) && strings.EqualFold(name[:len(headerPrefix)], headerPrefix)
}

// Headers are the headers a connection's requests carry to the target,
// for a handshake done in mode m: nil when off, or when passthrough got
// no certificate.
func Headers(m Mode, st *tls.ConnectionState) []Header {
	if st == nil || len(st.PeerCertificates) == 0 {
		return nil
	}
	switch m {
	case ModePassthrough:
		var chain []byte
		for _, c := range st.PeerCertificates {
			chain = append(chain, pemOf(c)...)
		}
		return []Header{{HeaderClientCert, Escape(string(chain))}}
	case ModeVerify:
		leaf := st.PeerCertificates[0]
		return []Header{
			{HeaderSerialNumber, fmt.Sprintf("%X", leaf.SerialNumber.Bytes())},
			{HeaderIssuer, leaf.Issuer.ToRDNSequence().String()},
			{HeaderSubject, leaf.Subject.ToRDNSequence().String()},
			{HeaderValidity, "NotBefore=" + leaf.NotBefore.UTC().Format(time.RFC3339) + ";NotAfter=" + leaf.NotAfter.UTC().Format(time.RFC3339)},
			{HeaderLeaf, Escape(string(pemOf(leaf)))},
		}
	}
	return nil
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Escape URL-encodes a PEM text as the ALB does for its certificate
// headers: every byte is percent-encoded (upper-case hex) except the
// letters, digits and "_.-~" (what is never quoted) and "+=/" (the
// documented safe characters, which base64 uses). So a space is %20 and a
// newline %0A: "-----BEGIN%20CERTIFICATE-----%0AMIIB...".
func Escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + len(s)/16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("_.-~+=/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

type ctxKey struct{}

// NewContext carries a connection's headers to the HTTP/1.1 handler.
func NewContext(ctx context.Context, h []Header) context.Context {
	return context.WithValue(ctx, ctxKey{}, h)
}

// FromContext returns the headers NewContext stored (nil if none).
func FromContext(ctx context.Context) []Header {
	h, _ := ctx.Value(ctxKey{}).([]Header)
	return h
}
