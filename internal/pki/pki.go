// Package pki mints throw-away certificate authorities and server
// certificates for tests, demos and the local twin of "prepare TLS
// certificates" (seed step 2). Everything is ECDSA P-256 unless a caller
// brings its own key, because P-256 is fast to generate and accepted by
// every TLS client we talk to (Go, gRPC C-core via PyMilvus, OpenSSL).
//
// It is not a production CA: there is no revocation, no serial registry and
// no key protection beyond file modes.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// backdate moves NotBefore into the past so that a certificate minted now is
// already valid on a machine whose clock is slightly behind ours.
const backdate = 5 * time.Minute

// CA is a certificate authority: a root (self-signed) or an intermediate
// signed by its parent. A CA is immutable after creation and safe for
// concurrent use.
type CA struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	parent *CA // nil for a root
}

// Leaf is an end-entity (server) certificate with its key and the CA that
// issued it.
type Leaf struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	Issuer *CA
}

// LeafOptions describes a leaf certificate for IssueWith. The zero NotBefore
// means "now minus a few minutes"; NotAfter is required.
type LeafOptions struct {
	DNSNames    []string
	IPAddresses []net.IP
	CommonName  string // defaults to the first DNS name, then the first IP
	NotBefore   time.Time
	NotAfter    time.Time
	// Key is the leaf's key; nil generates an ECDSA P-256 key. Tests use it
	// to cover RSA and Ed25519 certificates.
	Key crypto.Signer
	// ExtKeyUsage defaults to serverAuth+clientAuth.
	ExtKeyUsage []x509.ExtKeyUsage
}

// NewCA creates a self-signed root CA valid from now for validity.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	now := time.Now()
	return newCA(nil, commonName, now.Add(-backdate), now.Add(validity))
}

// NewIntermediate creates an intermediate CA signed by ca. It is valid as
// long as ca is, so chains built from it never outlive their root.
func (ca *CA) NewIntermediate(commonName string) (*CA, error) {
	return newCA(ca, commonName, time.Now().Add(-backdate), ca.Cert.NotAfter)
}

func newCA(parent *CA, cn string, notBefore, notAfter time.Time) (*CA, error) {
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("pki: CA %q: validity must be positive", cn)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generating key for CA %q: %w", cn, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"l7lb test PKI"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	cert, err := sign(tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("pki: signing CA %q: %w", cn, err)
	}
	return &CA{Cert: cert, Key: key, parent: parent}, nil
}

// Parent returns the CA that signed ca, or nil for a root.
func (ca *CA) Parent() *CA { return ca.parent }

// Root returns the self-signed CA at the top of ca's chain.
func (ca *CA) Root() *CA {
	for ca.parent != nil {
		ca = ca.parent
	}
	return ca
}

// Pool returns a pool holding only ca's root, the trust anchor a client
// needs to accept certificates issued below it.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root().Cert)
	return p
}

// Issue signs a server certificate for the given names, valid from now for
// validity.
func (ca *CA) Issue(dnsNames []string, ipAddrs []net.IP, validity time.Duration) (*Leaf, error) {
	return ca.IssueWith(LeafOptions{DNSNames: dnsNames, IPAddresses: ipAddrs, NotAfter: time.Now().Add(validity)})
}

// IssueExpired signs a certificate that expired an hour ago, for tests of
// expiry handling.
func (ca *CA) IssueExpired(dnsNames ...string) (*Leaf, error) {
	now := time.Now()
	return ca.IssueWith(LeafOptions{DNSNames: dnsNames, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
}

// IssueExpiringIn signs a certificate that expires days days from now (a
// little earlier, so "expires within N days" checks see it inside the
// window).
func (ca *CA) IssueExpiringIn(days int, dnsNames ...string) (*Leaf, error) {
	return ca.IssueWith(LeafOptions{DNSNames: dnsNames, NotAfter: time.Now().Add(time.Duration(days)*24*time.Hour - time.Minute)})
}

// IssueWith signs a leaf certificate described by o.
func (ca *CA) IssueWith(o LeafOptions) (*Leaf, error) {
	if o.NotAfter.IsZero() {
		return nil, errors.New("pki: leaf NotAfter is required")
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-backdate)
	}
	cn := o.CommonName
	switch {
	case cn != "":
	case len(o.DNSNames) > 0:
		cn = o.DNSNames[0]
	case len(o.IPAddresses) > 0:
		cn = o.IPAddresses[0].String()
	}
	key := o.Key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("pki: generating leaf key: %w", err)
		}
		key = k
	}
	eku := o.ExtKeyUsage
	if eku == nil {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPAddresses,
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	// RSA key exchange (TLS 1.2 non-ECDHE suites) needs keyEncipherment.
	if _, ok := key.Public().(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	cert, err := sign(tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: signing leaf %q: %w", cn, err)
	}
	return &Leaf{Cert: cert, Key: key, Issuer: ca}, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// newSerial returns a random 127-bit positive serial, as RFC 5280 asks
// (unique per CA, at most 20 octets, positive).
func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}
