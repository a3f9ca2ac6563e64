package listener

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/tlspolicy"
)

// The handshake matrix: TLS clients of each version, offering one cipher
// at a time, against listeners with five ALB policies. What each policy
// should accept is written out by hand from AWS's tables, not derived from
// l7lb's table, so that a mistake in either shows.

// matrixPolicies are the policies of the matrix, in its column order.
var matrixPolicies = []string{
	"ELBSecurityPolicy-TLS13-1-3-2021-06",
	"ELBSecurityPolicy-TLS13-1-2-2021-06",
	"ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
	"ELBSecurityPolicy-2016-08",
	"ELBSecurityPolicy-TLS-1-2-2017-01",
}

// hsClient is one row: a client offering exactly one protocol version and
// (below TLS 1.3) exactly one cipher.
type hsClient struct {
	name    string
	version uint16
	suite   uint16 // Go's id for the cipher (0: Go's client cannot offer it)
	cipher  string // the cipher's OpenSSL name ("" for TLS 1.3: its defaults)
	rsa     bool   // the cipher needs an RSA certificate
	// accepts says, per matrixPolicies column, whether the handshake
	// succeeds ('+') or is refused ('-').
	accepts string
}

var matrixClients = []hsClient{
	// TLS 1.3: every TLS 1.3 policy; the TLS 1.2-only policies refuse it.
	{"TLS1.3", tls.VersionTLS13, 0, "", false, "+++--"},
	// AES-GCM with ECDHE: every policy that allows TLS 1.2.
	{"TLS1.2 ECDHE-ECDSA-AES128-GCM-SHA256", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256", false, "-++++"},
	// CBC with SHA-256: not in the "Res" (restricted) policy.
	{"TLS1.2 ECDHE-ECDSA-AES128-SHA256", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, "ECDHE-ECDSA-AES128-SHA256", false, "-+-++"},
	// CBC with SHA-1: only the 2016-08 policy (of these) still has it.
	{"TLS1.2 ECDHE-ECDSA-AES128-SHA", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "ECDHE-ECDSA-AES128-SHA", false, "---+-"},
	// Listed by TLS13-1-2-2021-06, 2016-08 and TLS-1-2-2017-01, but not
	// implemented by crypto/tls: refused by every policy. Go's client
	// cannot offer it; openssl can.
	{"TLS1.2 ECDHE-ECDSA-AES256-SHA384", tls.VersionTLS12, 0, "ECDHE-ECDSA-AES256-SHA384", false, "-----"},
	// Static RSA key exchange: not in the TLS 1.3 policies, in 2016-08 and
	// TLS-1-2-2017-01.
	{"TLS1.2 AES128-GCM-SHA256", tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "AES128-GCM-SHA256", true, "---++"},
	// TLS 1.1 and 1.0: only 2016-08 of these.
	{"TLS1.1 ECDHE-ECDSA-AES128-SHA", tls.VersionTLS11, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "ECDHE-ECDSA-AES128-SHA", false, "---+-"},
	{"TLS1.0 ECDHE-ECDSA-AES128-SHA", tls.VersionTLS10, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "ECDHE-ECDSA-AES128-SHA", false, "---+-"},
}

// Server names of the two certificates every matrix listener holds.
const (
	ecdsaName = "ecdsa.milvus.test"
	rsaName   = "rsa.milvus.test"
)

// matrixEnv is one HTTPS listener per policy on loopback, each with an
// ECDSA (default) and an RSA certificate, chosen by SNI.
type matrixEnv struct {
	ca    *pki.CA
	caPEM string // file
	certs *atomic.Pointer[CertSet]
	addrs map[string]string
}

func startMatrix(t *testing.T) *matrixEnv {
	t.Helper()
	env := matrixCerts(t)
	for _, name := range matrixPolicies {
		p, err := tlspolicy.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := start(t, Options{Certs: env.certs, TLSPolicy: p}, nil)
		env.addrs[name] = l.Addr().String()
	}
	return env
}

// matrixCerts makes the CA and the two certificates.
func matrixCerts(t *testing.T) *matrixEnv {
	t.Helper()
	ca, err := pki.NewCA("handshake matrix CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ca.Issue([]string{ecdsaName}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ca.IssueWith(pki.LeafOptions{DNSNames: []string{rsaName}, NotAfter: time.Now().Add(time.Hour), Key: rsaKey})
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewCertSet([]Cert{{ARN: "ecdsa", TLS: ec.TLSCertificate()}, {ARN: "rsa", TLS: rs.TLSCertificate()}})
	if err != nil {
		t.Fatal(err)
	}
	certs := &atomic.Pointer[CertSet]{}
	certs.Store(set)
	env := &matrixEnv{ca: ca, caPEM: filepath.Join(t.TempDir(), "ca.pem"), certs: certs, addrs: map[string]string{}}
	if err := os.WriteFile(env.caPEM, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return env
}

// goHandshake runs one handshake with Go's client; it returns the
// negotiated version and cipher, or the error.
func (env *matrixEnv) goHandshake(addr string, c hsClient) (uint16, uint16, error) {
	cfg := &tls.Config{RootCAs: env.ca.Pool(), ServerName: ecdsaName, MinVersion: c.version, MaxVersion: c.version}
	if c.rsa {
		cfg.ServerName = rsaName
	}
	if c.suite != 0 {
		cfg.CipherSuites = []uint16{c.suite}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	st := conn.(*tls.Conn).ConnectionState()
	return st.Version, st.CipherSuite, nil
}

// TestHandshakeMatrixGo: the matrix with crypto/tls clients on loopback.
// An accepted handshake negotiates exactly the version and cipher offered.
func TestHandshakeMatrixGo(t *testing.T) {
	env := startMatrix(t)
	var table strings.Builder
	fmt.Fprintf(&table, "%-38s %s\n", "client \\ policy", strings.Join(shortNames(), " | "))
	for _, c := range matrixClients {
		if c.version < tls.VersionTLS13 && c.suite == 0 {
			continue // Go's client cannot offer this cipher; see the openssl test
		}
		row := make([]string, len(matrixPolicies))
		for i, pol := range matrixPolicies {
			want := c.accepts[i] == '+'
			v, suite, err := env.goHandshake(env.addrs[pol], c)
			switch {
			case want && err != nil:
				t.Errorf("%s against %s: refused (%v), want accepted", c.name, pol, err)
			case !want && err == nil:
				t.Errorf("%s against %s: accepted (%s, %s), want refused", c.name, pol, tls.VersionName(v), tls.CipherSuiteName(suite))
			case err == nil && (v != c.version || c.suite != 0 && suite != c.suite):
				t.Errorf("%s against %s: negotiated %s %s", c.name, pol, tls.VersionName(v), tls.CipherSuiteName(suite))
			}
			row[i] = outcome(err == nil, tls.VersionName(v), tls.CipherSuiteName(suite), err)
		}
		fmt.Fprintf(&table, "%-38s %s\n", c.name, strings.Join(row, " | "))
	}
	t.Logf("crypto/tls clients:\n%s", table.String())
}

// TestHandshakeMatrixOpenSSL: the same matrix with `openssl s_client`,
// which can also offer the cipher crypto/tls lacks. Skipped when openssl
// is not installed.
func TestHandshakeMatrixOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed (not in PATH): the openssl s_client handshake matrix is skipped; TestHandshakeMatrixGo covers the same matrix with crypto/tls")
	}
	ver, _ := exec.Command(bin, "version").Output()
	env := startMatrix(t)
	var table strings.Builder
	fmt.Fprintf(&table, "%s%-38s %s\n", ver, "client \\ policy", strings.Join(shortNames(), " | "))
	for _, c := range matrixClients {
		row := make([]string, len(matrixPolicies))
		for i, pol := range matrixPolicies {
			want := c.accepts[i] == '+'
			proto, cipher, err := sClient(t, bin, env, env.addrs[pol], c)
			wantProto := map[uint16]string{tls.VersionTLS10: "TLSv1", tls.VersionTLS11: "TLSv1.1", tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[c.version]
			switch {
			case want && err != nil:
				t.Errorf("openssl %s against %s: refused (%v), want accepted", c.name, pol, err)
			case !want && err == nil:
				t.Errorf("openssl %s against %s: accepted (%s, %s), want refused", c.name, pol, proto, cipher)
			case err == nil && (proto != wantProto || c.cipher != "" && cipher != c.cipher):
				t.Errorf("openssl %s against %s: negotiated %s %s", c.name, pol, proto, cipher)
			}
			row[i] = outcome(err == nil, proto, cipher, err)
		}
		fmt.Fprintf(&table, "%-38s %s\n", c.name, strings.Join(row, " | "))
	}
	t.Logf("openssl s_client:\n%s", table.String())
}

var (
	protoRE  = regexp.MustCompile(`(?m)^Protocol version: (\S+)`)
	cipherRE = regexp.MustCompile(`(?m)^Ciphersuite: (\S+)`)
)

// sClient runs one `openssl s_client` handshake (stdin closed, so it ends
// right after) and returns the protocol and cipher it reports, or an
// error with its output.
func sClient(t *testing.T, bin string, env *matrixEnv, addr string, c hsClient) (proto, cipher string, err error) {
	t.Helper()
	name := ecdsaName
	if c.rsa {
		name = rsaName
	}
	args := []string{"s_client", "-connect", addr, "-servername", name, "-CAfile", env.caPEM, "-verify_return_error", "-brief"}
	switch c.version {
	case tls.VersionTLS13:
		args = append(args, "-tls1_3")
	case tls.VersionTLS12:
		args = append(args, "-tls1_2")
	case tls.VersionTLS11:
		args = append(args, "-tls1_1")
	case tls.VersionTLS10:
		args = append(args, "-tls1")
	}
	if c.cipher != "" {
		// SECLEVEL 0: OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) at
		// its default level; here only the server's policy may refuse.
		args = append(args, "-cipher", c.cipher+":@SECLEVEL=0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(nil)
	out, runErr := cmd.CombinedOutput()
	p, ciph := protoRE.FindSubmatch(out), cipherRE.FindSubmatch(out)
	if runErr != nil || p == nil || ciph == nil {
		return "", "", fmt.Errorf("%v: %s", runErr, firstLine(out))
	}
	return string(p[1]), string(ciph[1]), nil
}

// firstLine picks the reason out of s_client's output: OpenSSL's error
// lines are "id:error:code:SSL routines:function:reason:file:line:...".
func firstLine(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, ":"); len(f) > 5 && f[1] == "error" {
			return f[5]
		}
	}
	return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
}

func shortNames() []string {
	var out []string
	for _, p := range matrixPolicies {
		out = append(out, strings.TrimPrefix(p, "ELBSecurityPolicy-"))
	}
	return out
}

func outcome(ok bool, proto, cipher string, err error) string {
	if !ok {
		return "refused: " + strings.TrimPrefix(strings.TrimPrefix(err.Error(), "exit status 1: "), "remote error: tls: ")
	}
	return proto + " " + cipher
}

// TestSetTLSPolicy: a listener's policy changes for new handshakes without
// re-listening (a reload that changes ssl-policy).
func TestSetTLSPolicy(t *testing.T) {
	ca, err := pki.NewCA("policy CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{ecdsaName}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewCertSet([]Cert{{ARN: "a", TLS: leaf.TLSCertificate()}})
	if err != nil {
		t.Fatal(err)
	}
	certs := &atomic.Pointer[CertSet]{}
	certs.Store(set)
	// The zero policy is l7lb's default, TLS13-1-2-2021-06: TLS 1.2 and
	// 1.3, not TLS 1.1.
	l, _ := start(t, Options{Certs: certs, Log: slog.New(slog.DiscardHandler)}, nil)
	env := &matrixEnv{ca: ca}
	tls11 := hsClient{version: tls.VersionTLS11, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	tls12 := hsClient{version: tls.VersionTLS12, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	tls13 := hsClient{version: tls.VersionTLS13}
	addr := l.Addr().String()
	for _, step := range []struct {
		policy                 string // "" : as started
		want11, want12, want13 bool
	}{
		{"", false, true, true},
		{"ELBSecurityPolicy-TLS13-1-3-2021-06", false, false, true},
		{"ELBSecurityPolicy-2016-08", true, true, false},
	} {
		if step.policy != "" {
			p, err := tlspolicy.Lookup(step.policy)
			if err != nil {
				t.Fatal(err)
			}
			l.SetTLSPolicy(p)
		}
		for _, c := range []struct {
			client hsClient
			want   bool
		}{{tls11, step.want11}, {tls12, step.want12}, {tls13, step.want13}} {
			v, _, err := env.goHandshake(addr, c.client)
			if (err == nil) != c.want || err == nil && v != c.client.version {
				t.Errorf("policy %q, client %s: negotiated %s, error %v; want accepted %v", step.policy, tls.VersionName(c.client.version), tls.VersionName(v), err, c.want)
			}
		}
	}
}
