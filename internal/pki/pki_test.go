package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestChainVerifies(t *testing.T) {
	root, err := NewCA("Test Root", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("Test Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		issuer    *CA
		wantChain int // certificates in ChainPEM
		wantTLS   int // certificates in TLSCertificate
	}{
		{"issued by root", root, 1, 1},
		{"issued by intermediate", inter, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := tt.issuer.Issue([]string{"milvus-demo.milvus.io"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			chain := parsePEMCerts(t, leaf.ChainPEM())
			if len(chain) != tt.wantChain {
				t.Fatalf("ChainPEM has %d certificates, want %d", len(chain), tt.wantChain)
			}
			if !chain[len(chain)-1].Equal(root.Cert) {
				t.Errorf("ChainPEM does not end with the root")
			}
			inters := x509.NewCertPool()
			for _, c := range chain[:len(chain)-1] {
				inters.AddCert(c)
			}
			got := parsePEMCerts(t, leaf.CertPEM())[0]
			for _, name := range []string{"milvus-demo.milvus.io", "127.0.0.1"} {
				if _, err := got.Verify(x509.VerifyOptions{DNSName: name, Roots: leaf.Issuer.Pool(), Intermediates: inters}); err != nil {
					t.Errorf("verify %s: %v", name, err)
				}
			}
			tc := leaf.TLSCertificate()
			if len(tc.Certificate) != tt.wantTLS {
				t.Errorf("TLSCertificate has %d certificates, want %d", len(tc.Certificate), tt.wantTLS)
			}
			if _, err := tls.X509KeyPair(leaf.CertPEM(), leaf.KeyPEM()); err != nil {
				t.Errorf("CertPEM/KeyPEM do not pair: %v", err)
			}
		})
	}
}

func TestValidityHelpers(t *testing.T) {
	ca, err := NewCA("Test Root", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expired, err := ca.IssueExpired("old.example")
	if err != nil {
		t.Fatal(err)
	}
	if !now.After(expired.Cert.NotAfter) {
		t.Errorf("IssueExpired: NotAfter %v is not in the past", expired.Cert.NotAfter)
	}
	soon, err := ca.IssueExpiringIn(10, "soon.example")
	if err != nil {
		t.Fatal(err)
	}
	if left := soon.Cert.NotAfter.Sub(now); left <= 9*24*time.Hour || left > 10*24*time.Hour {
		t.Errorf("IssueExpiringIn(10): %v left", left)
	}
	if _, err := NewCA("bad", -time.Hour); err == nil {
		t.Error("NewCA with negative validity succeeded")
	}
	if _, err := ca.IssueWith(LeafOptions{DNSNames: []string{"x"}}); err == nil {
		t.Error("IssueWith without NotAfter succeeded")
	}
}

func TestWriteFiles(t *testing.T) {
	ca, err := NewCA("Test Root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"a.example"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	// A stale world-readable key must not keep its mode.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, PrivateKeyFile), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := leaf.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		mode os.FileMode
	}{
		{CertificateFile, 0o644},
		{ChainFile, 0o644},
		{PrivateKeyFile, 0o600},
		{CAFile, 0o644},
	} {
		fi, err := os.Stat(filepath.Join(dir, tt.name))
		if err != nil {
			t.Fatal(err)
		}
		// Group/other bits may only be narrower (umask), never wider.
		if fi.Mode().Perm()&^tt.mode != 0 {
			t.Errorf("%s: mode %v, want at most %v", tt.name, fi.Mode().Perm(), tt.mode)
		}
	}
	key, err := os.ReadFile(filepath.Join(dir, PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(leaf.CertPEM(), key); err != nil {
		t.Errorf("written key does not pair with the certificate: %v", err)
	}
}

func parsePEMCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}
