package certstore

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
)

const host = "milvus-demo.milvus.io"

// testPKI is a root, an intermediate and a leaf issued by the intermediate,
// like a commercial CA's chain.
type testPKI struct {
	root, inter *pki.CA
	leaf        *pki.Leaf
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	root, err := pki.NewCA("Test Root", 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("Test Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.Issue([]string{host}, []net.IP{net.IPv4(127, 0, 0, 1)}, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{root: root, inter: inter, leaf: leaf}
}

// issueWith issues a leaf from p's intermediate with key.
func (p testPKI) issueWith(t *testing.T, o pki.LeafOptions) *pki.Leaf {
	t.Helper()
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	if o.DNSNames == nil {
		o.DNSNames = []string{host}
	}
	l, err := p.inter.IssueWith(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs1(t *testing.T, k *rsa.PrivateKey) []byte {
	return pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
}

func sec1(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	// openssl ecparam -genkey writes the curve parameters first.
	params := pemOf("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})
	return append(params, pemOf("EC PRIVATE KEY", der)...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
