package listener

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
)

// Cert is one certificate a listener can present, with the ARN it was
// imported under (for logs and the access log).
type Cert struct {
	ARN string
	TLS tls.Certificate
}

// CertSet chooses the certificate for a TLS handshake by SNI: an exact
// name match wins over a wildcard match; no server name or no match gets
// the default (the first certificate-arn), as on the ALB.
type CertSet struct {
	def      *tls.Certificate
	defARN   string
	exact    map[string]int // lower-case DNS name -> index
	wildcard map[string]int // ".suffix" -> index
	certs    []Cert
}

// NewCertSet indexes certs by the DNS names of their leaves; certs[0] is
// the default.
func NewCertSet(certs []Cert) (*CertSet, error) {
	if len(certs) == 0 {
		return nil, fmt.Errorf("an HTTPS listener needs at least one certificate")
	}
	s := &CertSet{exact: map[string]int{}, wildcard: map[string]int{}, certs: certs}
	for i := range certs {
		c := &certs[i]
		leaf := c.TLS.Leaf
		if leaf == nil {
			if len(c.TLS.Certificate) == 0 {
				return nil, fmt.Errorf("certificate %s has no certificate data", c.ARN)
			}
			var err error
			if leaf, err = x509.ParseCertificate(c.TLS.Certificate[0]); err != nil {
				return nil, fmt.Errorf("certificate %s: %w", c.ARN, err)
			}
			c.TLS.Leaf = leaf
		}
		names := leaf.DNSNames
		if len(names) == 0 && leaf.Subject.CommonName != "" {
			names = []string{leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(n)
			if strings.HasPrefix(n, "*.") {
				if _, dup := s.wildcard[n[1:]]; !dup {
					s.wildcard[n[1:]] = i
				}
			} else if _, dup := s.exact[n]; !dup {
				s.exact[n] = i
			}
		}
	}
	s.def = &certs[0].TLS
	s.defARN = certs[0].ARN
	return s, nil
}

// Select returns the certificate and its ARN for a server name.
func (s *CertSet) Select(serverName string) (*tls.Certificate, string) {
	if serverName != "" {
		name := strings.ToLower(strings.TrimSuffix(serverName, "."))
		if i, ok := s.exact[name]; ok {
			return &s.certs[i].TLS, s.certs[i].ARN
		}
		if dot := strings.IndexByte(name, '.'); dot > 0 {
			if i, ok := s.wildcard[name[dot:]]; ok {
				return &s.certs[i].TLS, s.certs[i].ARN
			}
		}
	}
	return s.def, s.defARN
}

// Certs lists the set's certificates, default first.
func (s *CertSet) Certs() []Cert { return s.certs }
