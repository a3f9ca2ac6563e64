package truststore

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// BundleError is a problem with a CA certificates bundle. Index is the
// 1-based position of the certificate (PEM block) at fault, 0 when the
// problem is the bundle as a whole; File is set by callers that read the
// bundle from a file, so that the message names it.
type BundleError struct {
	File  string
	Index int
	Err   error
}

func (e *BundleError) Error() string {
	msg := "CA certificates bundle"
	if e.File != "" {
		msg += " " + e.File
	}
	if e.Index > 0 {
		msg += fmt.Sprintf(": certificate %d", e.Index)
	}
	return msg + ": " + e.Err.Error()
}

func (e *BundleError) Unwrap() error { return e.Err }

// ParseBundle reads a CA certificates bundle: one or more PEM CERTIFICATE
// blocks, each a CA (basic constraints with CA true), as the ALB requires
// of a trust store. Text before the first block is allowed (openssl's
// "subject=" lines); anything else that pem.Decode would skip is an
// error, so a truncated certificate never silently vanishes.
func ParseBundle(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for i := 1; ; i++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, &BundleError{Index: i, Err: fmt.Errorf("PEM block of type %q, want CERTIFICATE", b.Type)}
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, &BundleError{Index: i, Err: err}
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, &BundleError{Index: i, Err: fmt.Errorf("%s is not a CA certificate (basic constraints CA:TRUE missing); a trust store holds the CAs that issue client certificates, not the client certificates themselves", c.Subject)}
		}
		certs = append(certs, c)
	}
	leftover := bytes.TrimSpace(rest)
	switch {
	case len(leftover) > 0 && bytes.Contains(leftover, []byte("-----BEGIN")):
		return nil, &BundleError{Index: len(certs) + 1, Err: fmt.Errorf("malformed PEM (bad base64, or a missing or mismatched END line)")}
	case len(leftover) > 0 && len(certs) > 0:
		return nil, &BundleError{Err: fmt.Errorf("unexpected non-PEM data after certificate %d", len(certs))}
	case len(certs) == 0:
		return nil, &BundleError{Err: fmt.Errorf("no certificate found; want one or more PEM CA certificates")}
	}
	return certs, nil
}
