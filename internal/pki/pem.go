package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// File names written by WriteFiles. The first three are the names the seed's
// `aws acm import-certificate` command reads; ca.pem is the trust anchor a
// client (PyMilvus `server_pem_path`, grpc `ca_certs`) needs.
const (
	CertificateFile = "Certificate.pem"
	ChainFile       = "CertificateChain.pem"
	PrivateKeyFile  = "PrivateKey.pem"
	CAFile          = "ca.pem"
)

// CertPEM returns the CA's certificate in PEM.
func (ca *CA) CertPEM() []byte { return certPEM(ca.Cert) }

// KeyPEM returns the CA's private key as PKCS#8 PEM.
func (ca *CA) KeyPEM() []byte { return keyPEM(ca.Key) }

// CertPEM returns the leaf certificate in PEM.
func (l *Leaf) CertPEM() []byte { return certPEM(l.Cert) }

// KeyPEM returns the leaf's private key as PKCS#8 PEM.
func (l *Leaf) KeyPEM() []byte { return keyPEM(l.Key) }

// ChainPEM returns the issuing chain, nearest issuer first and the root last,
// which is the order ACM expects in CertificateChain.pem.
func (l *Leaf) ChainPEM() []byte {
	var out []byte
	for ca := l.Issuer; ca != nil; ca = ca.parent {
		out = append(out, ca.CertPEM()...)
	}
	return out
}

// TLSCertificate returns the leaf with its intermediates (not the root, which
// clients already hold) and key, ready for a tls.Config.
func (l *Leaf) TLSCertificate() tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
	for ca := l.Issuer; ca != nil && ca.parent != nil; ca = ca.parent {
		tc.Certificate = append(tc.Certificate, ca.Cert.Raw)
	}
	return tc
}

// WriteFiles writes Certificate.pem, CertificateChain.pem, PrivateKey.pem and
// ca.pem into dir (created 0700 if missing). The key file is 0600; the others
// are public and 0644.
func (l *Leaf) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: creating %s: %w", dir, err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CertificateFile, l.CertPEM(), 0o644},
		{ChainFile, l.ChainPEM(), 0o644},
		{PrivateKeyFile, l.KeyPEM(), 0o600},
		{CAFile, l.Issuer.Root().CertPEM(), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		// WriteFile keeps the mode of an existing file, so remove first: an
		// old 0644 PrivateKey.pem must not stay world-readable.
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("pki: replacing %s: %w", p, err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return fmt.Errorf("pki: writing %s: %w", p, err)
		}
	}
	return nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		// Only keys this package (or a test) created reach here, and all
		// of RSA, ECDSA and Ed25519 marshal; anything else is a bug.
		panic(fmt.Sprintf("pki: marshal private key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
