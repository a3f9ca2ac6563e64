package certstore

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
)

func TestCheck(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t) // an unrelated CA hierarchy
	now := time.Now()

	type inputs struct{ cert, chain, key []byte }
	good := inputs{p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM()}

	tests := []struct {
		name      string
		in        func(t *testing.T) inputs
		now       time.Time // zero: now
		wantInput Input     // "" means success
		wantErr   string
		wantWarn  string // substring of one warning; "" means no warnings
		wantAlg   string
	}{
		{
			name:    "ECDSA leaf, intermediate and root",
			in:      func(*testing.T) inputs { return good },
			wantAlg: "EC_prime256v1",
		},
		{
			name: "chain stops at the intermediate",
			in: func(*testing.T) inputs {
				return inputs{p.leaf.CertPEM(), p.inter.CertPEM(), p.leaf.KeyPEM()}
			},
			wantAlg: "EC_prime256v1",
		},
		{
			name: "RSA key as PKCS#1",
			in: func(t *testing.T) inputs {
				k := rsaKey(t)
				l := p.issueWith(t, pki.LeafOptions{Key: k})
				return inputs{l.CertPEM(), l.ChainPEM(), pkcs1(t, k)}
			},
			wantAlg: "RSA_2048",
		},
		{
			name: "EC key as SEC1 after EC PARAMETERS",
			in: func(t *testing.T) inputs {
				k := ecKey(t)
				l := p.issueWith(t, pki.LeafOptions{Key: k})
				return inputs{l.CertPEM(), l.ChainPEM(), sec1(t, k)}
			},
			wantAlg: "EC_prime256v1",
		},
		{
			name: "Ed25519 key as PKCS#8",
			in: func(t *testing.T) inputs {
				l := p.issueWith(t, pki.LeafOptions{Key: edKey(t)})
				return inputs{l.CertPEM(), l.ChainPEM(), l.KeyPEM()}
			},
			wantAlg: "ED25519",
		},
		{
			name: "text before the first block is allowed",
			in: func(*testing.T) inputs {
				return inputs{cat([]byte("subject=CN = "+host+"\n"), good.cert), good.chain, good.key}
			},
			wantAlg: "EC_prime256v1",
		},
		{
			name: "key of another certificate",
			in: func(*testing.T) inputs {
				return inputs{good.cert, good.chain, other.leaf.KeyPEM()}
			},
			wantInput: InputKey,
			wantErr:   "does not match the certificate's public key (a different key of the same type)",
		},
		{
			name: "RSA key for an EC certificate",
			in: func(t *testing.T) inputs {
				return inputs{good.cert, good.chain, pkcs1(t, rsaKey(t))}
			},
			wantInput: InputKey,
			wantErr:   "key is RSA_2048, certificate has EC_prime256v1",
		},
		{
			name: "chain of another CA",
			in: func(*testing.T) inputs {
				return inputs{good.cert, other.leaf.ChainPEM(), good.key}
			},
			wantInput: InputChain,
			wantErr:   "does not verify the certificate",
		},
		{
			name: "chain without the intermediate",
			in: func(*testing.T) inputs {
				return inputs{good.cert, p.root.CertPEM(), good.key}
			},
			wantInput: InputChain,
			wantErr:   `does not verify the certificate: x509: certificate signed by unknown authority (no certificate in the chain is the issuer "CN=Test Intermediate,O=l7lb test PKI")`,
		},
		{
			name: "expired certificate",
			in: func(t *testing.T) inputs {
				l, err := p.inter.IssueExpired(host)
				if err != nil {
					t.Fatal(err)
				}
				return inputs{l.CertPEM(), l.ChainPEM(), l.KeyPEM()}
			},
			wantInput: InputCertificate,
			wantErr:   "expired on",
		},
		{
			name:      "not yet valid",
			in:        func(*testing.T) inputs { return good },
			now:       now.Add(-time.Hour),
			wantInput: InputCertificate,
			wantErr:   "not valid until",
		},
		{
			name: "expires within 30 days",
			in: func(t *testing.T) inputs {
				l, err := p.inter.IssueExpiringIn(10, host)
				if err != nil {
					t.Fatal(err)
				}
				return inputs{l.CertPEM(), l.ChainPEM(), l.KeyPEM()}
			},
			wantWarn: "certificate expires in 9 days",
		},
		{
			name: "intermediate expires within 30 days",
			in: func(t *testing.T) inputs {
				root, err := pki.NewCA("Short Root", 20*24*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				l, err := root.Issue([]string{host}, nil, 365*24*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				return inputs{l.CertPEM(), l.ChainPEM(), l.KeyPEM()}
			},
			wantWarn: "certificate chain block 1 (CN=Short Root,O=l7lb test PKI) expires in ", // 19 or 20 days: x509 keeps whole seconds
		},
		{
			name:      "garbage certificate",
			in:        func(*testing.T) inputs { return inputs{[]byte("hello, world\n"), good.chain, good.key} },
			wantInput: InputCertificate,
			wantErr:   "no PEM data found",
		},
		{
			name: "corrupt second chain block",
			in: func(*testing.T) inputs {
				bad := []byte("-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n")
				return inputs{good.cert, cat(p.inter.CertPEM(), bad), good.key}
			},
			wantInput: InputChain,
			wantErr:   "PEM block 2: malformed PEM",
		},
		{
			name: "DER bytes inside a certificate block",
			in: func(*testing.T) inputs {
				return inputs{pemOf("CERTIFICATE", []byte("nonsense")), good.chain, good.key}
			},
			wantInput: InputCertificate,
			wantErr:   "PEM block 1: x509:",
		},
		{
			name:      "key in the certificate file",
			in:        func(*testing.T) inputs { return inputs{good.key, good.chain, good.key} },
			wantInput: InputCertificate,
			wantErr:   "holds a PRIVATE KEY, not a certificate",
		},
		{
			name:      "certificate in the key file",
			in:        func(*testing.T) inputs { return inputs{good.cert, good.chain, good.cert} },
			wantInput: InputKey,
			wantErr:   "holds a CERTIFICATE, not a private key",
		},
		{
			name:      "two certificates in the certificate file",
			in:        func(*testing.T) inputs { return inputs{cat(good.cert, p.inter.CertPEM()), nil, good.key} },
			wantInput: InputCertificate,
			wantErr:   "holds 2 certificates",
		},
		{
			name: "encrypted key",
			in: func(*testing.T) inputs {
				return inputs{good.cert, good.chain, pemOf("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3})}
			},
			wantInput: InputKey,
			wantErr:   "the key is encrypted",
		},
		{
			name:      "empty key",
			in:        func(*testing.T) inputs { return inputs{good.cert, good.chain, nil} },
			wantInput: InputKey,
			wantErr:   "no private key found",
		},
		{
			name: "fullchain given as chain",
			in: func(*testing.T) inputs {
				return inputs{good.cert, cat(good.cert, good.chain), good.key}
			},
			wantWarn: "chain block 1 is the certificate itself; dropped",
		},
		{
			name: "unrelated certificate in the chain",
			in: func(*testing.T) inputs {
				return inputs{good.cert, cat(good.chain, other.root.CertPEM()), good.key}
			},
			wantWarn: "chain block 3 (CN=Test Root,O=l7lb test PKI) is not on the path",
		},
		{
			name: "no chain",
			in: func(*testing.T) inputs {
				return inputs{good.cert, nil, good.key}
			},
			wantWarn: `no certificate chain given; clients must already trust the issuer "CN=Test Intermediate`,
		},
		{
			name: "self-signed certificate without chain",
			in: func(t *testing.T) inputs {
				// A root CA's own certificate stands in for a self-signed server certificate.
				return inputs{p.root.CertPEM(), nil, p.root.KeyPEM()}
			},
			wantWarn: "certificate is self-signed",
		},
		{
			name: "no subject alternative names",
			in: func(t *testing.T) inputs {
				l := p.issueWith(t, pki.LeafOptions{DNSNames: []string{}, CommonName: host})
				return inputs{l.CertPEM(), l.ChainPEM(), l.KeyPEM()}
			},
			wantWarn: "no DNS or IP subject alternative names",
		},
		{
			name: "client-only certificate",
			in: func(t *testing.T) inputs {
				l := p.issueWith(t, pki.LeafOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
				return inputs{l.CertPEM(), l.ChainPEM(), l.KeyPEM()}
			},
			wantWarn: "lacks TLS server authentication",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in(t)
			at := tt.now
			if at.IsZero() {
				at = now
			}
			meta, warns, err := Check(in.cert, in.chain, in.key, at)
			if tt.wantInput != "" {
				var ie *InputError
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v, want an *InputError", err)
				}
				if ie.Input != tt.wantInput || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %q (input %q), want input %q and %q", err, ie.Input, tt.wantInput, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if tt.wantAlg != "" && meta.KeyAlgorithm != tt.wantAlg {
				t.Errorf("KeyAlgorithm = %q, want %q", meta.KeyAlgorithm, tt.wantAlg)
			}
			if !hasWarning(warns, tt.wantWarn) {
				t.Errorf("warnings = %q, want one containing %q", warns, tt.wantWarn)
			}
			if tt.wantWarn == "" && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
		})
	}
}

func hasWarning(warns []string, want string) bool {
	if want == "" {
		return true
	}
	for _, w := range warns {
		if strings.Contains(w, want) {
			return true
		}
	}
	return false
}

func TestCheckMetadata(t *testing.T) {
	p := newTestPKI(t)
	m, _, err := Check(p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.DomainName != host || m.Subject != "CN="+host {
		t.Errorf("DomainName %q, Subject %q", m.DomainName, m.Subject)
	}
	if got := strings.Join(m.SubjectAlternativeNames(), ","); got != host+",127.0.0.1" {
		t.Errorf("SANs = %q", got)
	}
	if m.Issuer != "CN=Test Intermediate,O=l7lb test PKI" {
		t.Errorf("Issuer = %q", m.Issuer)
	}
	if m.SignatureAlgorithm != "SHA256WITHECDSA" {
		t.Errorf("SignatureAlgorithm = %q", m.SignatureAlgorithm)
	}
	if want := colonHex(p.leaf.Cert.SerialNumber.Bytes()); m.Serial != want || !strings.Contains(m.Serial, ":") {
		t.Errorf("Serial = %q, want %q", m.Serial, want)
	}
	if !m.NotAfter.Equal(p.leaf.Cert.NotAfter) || len(m.SHA256) != 64 {
		t.Errorf("NotAfter %v, SHA256 %q", m.NotAfter, m.SHA256)
	}
}
