package truststore

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
)

func newCA(t *testing.T, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(cn, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestParseBundle(t *testing.T) {
	root := newCA(t, "Root A")
	other := newCA(t, "Root B")
	inter, err := root.NewIntermediate("Inter A")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.Issue([]string{"client"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := append(append(root.CertPEM(), inter.CertPEM()...), other.CertPEM()...)
	certs, err := ParseBundle(append([]byte("subject=CN = Root A\n"), good...))
	if err != nil || len(certs) != 3 {
		t.Fatalf("ParseBundle(3 CAs) = %d, %v", len(certs), err)
	}
	truncated := root.CertPEM()
	truncated = append(append([]byte{}, root.CertPEM()...), other.CertPEM()[:len(other.CertPEM())/2]...)
	cases := []struct {
		name      string
		data      []byte
		wantIndex int
		want      string
	}{
		{"empty", nil, 0, "no certificate found"},
		{"blank", []byte("\n \n"), 0, "no certificate found"},
		{"not PEM", []byte("hello"), 0, "no certificate found"},
		{"client certificate", append(append([]byte{}, root.CertPEM()...), leaf.CertPEM()...), 2, "is not a CA certificate"},
		{"truncated second", truncated, 2, "malformed PEM"},
		{"key", append(append([]byte{}, root.CertPEM()...), root.KeyPEM()...), 2, "want CERTIFICATE"},
		{"bad DER", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 1, "malformed"},
		{"trailing text", append(append([]byte{}, root.CertPEM()...), "junk"...), 0, "unexpected non-PEM data after certificate 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBundle(tc.data)
			var be *BundleError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v, want a BundleError", err)
			}
			if be.Index != tc.wantIndex || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q (index %d), want index %d and %q", err, be.Index, tc.wantIndex, tc.want)
			}
		})
	}
}

func TestStoreLifecycle(t *testing.T) {
	root := newCA(t, "Client Root")
	next := newCA(t, "Next Root")
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts, _, err := s.Create("clients", root.CertPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^arn:l7lb:elasticloadbalancing:local:000000000000:truststore/clients/[0-9a-f]{16}$`).MatchString(ts.ARN) || ts.NumberOfCaCertificates != 1 {
		t.Fatalf("Create = %+v", ts)
	}
	if _, _, err := s.Create("clients", root.CertPEM(), time.Now()); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second Create of one name: %v, want ErrDuplicate", err)
	}
	for _, bad := range []string{"", "-a", "a-", "a_b", "../x", strings.Repeat("a", 33)} {
		if _, _, err := s.Create(bad, root.CertPEM(), time.Now()); !errors.Is(err, ErrBadName) {
			t.Errorf("Create(%q): %v, want ErrBadName", bad, err)
		}
	}
	// Load by ARN and by name: the pool verifies what root issued.
	leaf, err := root.Issue([]string{"c"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{ts.ARN, "clients"} {
		pool, got, err := s.Load(ref)
		if err != nil {
			t.Fatalf("Load(%s): %v", ref, err)
		}
		if got.ARN != ts.ARN {
			t.Errorf("Load(%s) described %s", ref, got.ARN)
		}
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("pool of %s does not verify root's client: %v", ref, err)
		}
	}
	// An ARN with the right name and another id is another trust store.
	if _, _, err := s.Load(ARN("clients", "0000000000000000")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(other id): %v, want ErrNotFound", err)
	}
	// Modify keeps the ARN and swaps the bundle.
	mod, _, err := s.Modify(ts.ARN, append(root.CertPEM(), next.CertPEM()...), time.Now())
	if err != nil || mod.ARN != ts.ARN || mod.NumberOfCaCertificates != 2 {
		t.Fatalf("Modify = %+v, %v", mod, err)
	}
	if list, err := s.List(); err != nil || len(list) != 1 || list[0].NumberOfCaCertificates != 2 {
		t.Errorf("List = %+v, %v", list, err)
	}
	if err := s.Delete(ts.ARN); err != nil {
		t.Fatal(err)
	}
	if s.Has("clients") || s.Delete(ts.ARN) == nil {
		t.Error("trust store still there after Delete")
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) != 0 {
		t.Errorf("left in the store after Delete: %v", entries)
	}
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Command(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

var createOutRE = regexp.MustCompile(`^\{
    "TrustStores": \[
        \{
            "Name": "clients",
            "TrustStoreArn": "(arn:l7lb:elasticloadbalancing:local:000000000000:truststore/clients/[0-9a-f]{16})",
            "Status": "ACTIVE",
            "NumberOfCaCertificates": 2,
            "TotalRevokedEntries": 0
        \}
    \]
\}
$`)

// The CLI prints what aws elbv2 create-trust-store / describe-trust-stores
// print, and names the file and certificate of a bad bundle.
func TestCommand(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	a, b := newCA(t, "A"), newCA(t, "B")
	bundle := filepath.Join(dir, "ca-bundle.pem")
	if err := os.WriteFile(bundle, append(a.CertPEM(), b.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	leaf, _ := a.Issue([]string{"c"}, nil, time.Hour)
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, append(a.CertPEM(), leaf.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCmd(t, "create", "--store", store, "--name", "clients", "--ca-certificates-bundle", "fileb://"+bundle)
	m := createOutRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("create: %d\n%s%s", code, out, errOut)
	}
	arn := m[1]
	code, out, _ = runCmd(t, "describe", "--store", store, "--trust-store-arns", arn)
	if code != 0 || !createOutRE.MatchString(out) {
		t.Errorf("describe --trust-store-arns: %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "list", "--store", store)
	if code != 0 || !createOutRE.MatchString(out) {
		t.Errorf("list: %d\n%s", code, out)
	}
	code, _, errOut = runCmd(t, "create", "--store", store, "--name", "x", "--ca-certificates-bundle", "fileb://"+bad)
	if code != 1 || !strings.Contains(errOut, "bundle "+bad+": certificate 2: CN=c is not a CA certificate") {
		t.Errorf("create with a client certificate in the bundle: %d %q", code, errOut)
	}
	if code, _, errOut = runCmd(t, "create", "--store", store, "--name", "x"); code != 2 || !strings.Contains(errOut, "--ca-certificates-bundle is required") {
		t.Errorf("create without a bundle: %d %q", code, errOut)
	}
	if code, out, errOut = runCmd(t, "delete", "--store", store, "--trust-store-arn", arn); code != 0 || out != "" {
		t.Errorf("delete: %d %q %q", code, out, errOut)
	}
	if code, _, errOut = runCmd(t, "describe", "--store", store, "--names", "clients"); code != 1 || !strings.Contains(errOut, "trust store not found: clients") {
		t.Errorf("describe after delete: %d %q", code, errOut)
	}
}
