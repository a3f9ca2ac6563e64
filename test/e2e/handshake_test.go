package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/ingress"
	"github.com/l7lb/l7lb/internal/config/manifest"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
	"github.com/l7lb/l7lb/internal/tlspolicy"
	"github.com/l7lb/l7lb/internal/truststore"
)

// The handshake matrix of issue 12, end to end: one running l7lb (the
// runtime serve runs), reloaded with each ssl-policy name it accepts and
// then with mutual-authentication verify, probed on loopback by `openssl
// s_client` and by Go clients (gRPC for the policies, the Milvus Go SDK
// for mutual TLS). internal/listener's matrix covers single ciphers; this
// one covers every policy name, through the whole product.

// matrixLB is l7lb in front of one fakemilvus replica, with a trust store
// "clients" holding CA1, and everything a client needs on disk.
type matrixLB struct {
	t         *testing.T
	lb        *lbtest.LB
	endpoints ingress.Options
	trustARN  string
	ca1, ca2  *pki.CA
	dir       string // PEM files for openssl
	addr      string
}

func startMatrixLB(t *testing.T) *matrixLB {
	t.Helper()
	certs := lbtest.NewCerts(t, "matrix CA")
	m := &matrixLB{t: t, ca1: newCA(t, "clients CA1"), ca2: newCA(t, "clients CA2"), dir: t.TempDir()}
	m.trustARN = lbtest.CreateTrustStore(t, certs.Dir, "clients", m.ca1)
	trust, err := truststore.Open(certs.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := fakemilvus.Start(fakemilvus.Options{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	eps := lbtest.Endpoints(cl.Addrs()...)
	m.endpoints = ingress.Options{Endpoints: map[string][]config.Endpoint{lbtest.Service: eps}}
	m.lb = lbtest.Start(t, lbtest.Options{Ingress: matrixIngress(""), Certs: certs,
		Endpoints: m.endpoints.Endpoints, Runtime: runtime.Options{TrustStores: trust}})
	m.addr = m.lb.Addr(443)
	m.write("server-ca.pem", m.lb.CA.CertPEM())
	for _, c := range []struct {
		name string
		ca   *pki.CA
	}{{"ca1", m.ca1}, {"ca2", m.ca2}} {
		l := clientCert(t, c.ca, "matrix-client-"+c.name)
		m.write(c.name+"-cert.pem", l.CertPEM())
		m.write(c.name+"-key.pem", l.KeyPEM())
	}
	return m
}

func (m *matrixLB) write(name string, b []byte) {
	if err := os.WriteFile(filepath.Join(m.dir, name), b, 0o600); err != nil {
		m.t.Fatal(err)
	}
}

func (m *matrixLB) path(name string) string { return filepath.Join(m.dir, name) }

// matrixIngress is the seed's Ingress with more annotations.
func matrixIngress(annotations string) string {
	return lbtest.Ingress(`[{"HTTPS":443}]`, annotations)
}

// apply reloads l7lb with the Ingress carrying annotations, as serve does
// on a file change: translate, then Apply. The listener keeps its socket.
func (m *matrixLB) apply(annotations string) {
	m.t.Helper()
	doc := strings.ReplaceAll(matrixIngress(annotations), lbtest.Placeholder, m.lb.ARN)
	objs, _, err := manifest.Parse("ingress.yaml", []byte(doc))
	if err != nil {
		m.t.Fatal(err)
	}
	snap, err := ingress.Translate(objs, m.endpoints)
	if err != nil {
		m.t.Fatalf("translate with %s: %v", annotations, err)
	}
	if err := m.lb.Runtime.Apply(snap); err != nil {
		m.t.Fatalf("apply with %s: %v", annotations, err)
	}
	if got := m.lb.Runtime.Addrs()[443].String(); got != m.addr {
		m.t.Fatalf("the reload moved the listener from %s to %s", m.addr, got)
	}
}

// handshake is one cell: the TLS version negotiated, or why it failed.
type handshake struct {
	ok     bool
	detail string
}

func (h handshake) String() string {
	if h.ok {
		return "+ " + h.detail
	}
	return "- " + h.detail
}

var (
	sProtoRE  = regexp.MustCompile(`(?m)^Protocol version: (\S+)`)
	sHTTPRE   = regexp.MustCompile(`(?m)^HTTP/1\.1 \d{3}`)
	sAlertRE  = regexp.MustCompile(`alert ([a-z ]+)|(tlsv1 alert [a-z ]+)|:([a-z ]*(version|protocol)[a-z ]*):`)
	versionOf = map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}
)

// openssl runs `openssl s_client` for one handshake at version, with the
// client certificate of ca ("" for none), sends an HTTP/1.1 request and
// reads until l7lb closes: a handshake passed when an HTTP response came
// back. Reading matters: a TLS 1.3 client learns that its certificate was
// refused only from the alert that follows its side of the handshake.
func (m *matrixLB) openssl(bin string, version uint16, ca string) handshake {
	args := []string{"s_client", "-connect", m.addr, "-servername", serverName, "-CAfile", m.path("server-ca.pem"),
		"-verify_return_error", "-brief", "-ign_eof", "-alpn", "http/1.1"}
	args = append(args, map[uint16]string{tls.VersionTLS12: "-tls1_2", tls.VersionTLS13: "-tls1_3"}[version])
	if ca != "" {
		args = append(args, "-cert", m.path(ca+"-cert.pem"), "-key", m.path(ca+"-key.pem"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader("GET /v2/vectordb/collections/list HTTP/1.1\r\nHost: " + serverName + "\r\nConnection: close\r\n\r\n")
	out, _ := cmd.CombinedOutput()
	if p := sProtoRE.FindSubmatch(out); p != nil && sHTTPRE.Match(out) {
		return handshake{true, string(p[1])}
	}
	if a := sAlertRE.FindSubmatch(out); a != nil {
		for _, g := range a[1:] {
			if len(g) > 0 {
				return handshake{false, strings.TrimSpace(string(g))}
			}
		}
	}
	return handshake{false, "no response: " + strings.Join(strings.Fields(string(out)), " ")}
}

// goGRPC makes one GetVersion RPC over a new gRPC connection at version.
func (m *matrixLB) goGRPC(version uint16) handshake {
	tc := &tls.Config{RootCAs: m.lb.CA.Pool(), ServerName: serverName, MinVersion: version, MaxVersion: version}
	cc, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		m.t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := milvuspb.NewMilvusServiceClient(cc).GetVersion(ctx, &milvuspb.GetVersionRequest{}); err != nil {
		return handshake{false, shortErr(err)}
	}
	return handshake{true, versionOf[version]}
}

// goSDK connects the Milvus Go SDK at version with the client certificate
// of ca (nil: none) and lists collections.
func (m *matrixLB) goSDK(version uint16, ca *pki.CA) handshake {
	tc := &tls.Config{RootCAs: m.lb.CA.Pool(), ServerName: serverName, MinVersion: version, MaxVersion: version}
	if ca != nil {
		tc.Certificates = []tls.Certificate{clientCert(m.t, ca, "matrix-sdk").TLSCertificate()}
	}
	opts := append(slices.Clone(milvusclient.DefaultGrpcOpts), grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithReturnConnectionError())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: m.addr, DialOptions: opts})
	if err == nil {
		defer c.Close(context.Background())
		_, err = c.ListCollections(ctx, milvusclient.NewListCollectionOption())
	}
	if err != nil {
		return handshake{false, shortErr(err)}
	}
	return handshake{true, versionOf[version]}
}

var tlsErrRE = regexp.MustCompile(`tls: ([a-z ]+)`)

func shortErr(err error) string {
	if m := tlsErrRE.FindStringSubmatch(err.Error()); m != nil {
		return strings.TrimSpace(m[1])
	}
	return err.Error()
}

// policyAllows is what AWS's naming says of a policy, written out here
// rather than read from tlspolicy: every ELBSecurityPolicy-TLS13-* policy
// allows TLS 1.3 and no other policy does; every policy allows TLS 1.2
// except TLS13-1-3-2021-06, which is TLS 1.3 only.
func policyAllows(policy string, version uint16) bool {
	switch version {
	case tls.VersionTLS13:
		return strings.HasPrefix(policy, "ELBSecurityPolicy-TLS13-")
	case tls.VersionTLS12:
		return policy != "ELBSecurityPolicy-TLS13-1-3-2021-06"
	}
	panic("version")
}

// TestHandshakeMatrixE2E: TLS 1.2 and TLS 1.3 against every ssl-policy
// name l7lb accepts (one l7lb, reloaded per policy), with openssl s_client
// and a Go gRPC client; then mutual-authentication verify with the trust
// store of CA1: no certificate, a CA2 certificate and a CA1 certificate,
// at TLS 1.2 and 1.3, with openssl and the Milvus Go SDK. Every cell is
// checked against what the policy or mode says; the table is logged as
// Markdown. Without openssl the openssl columns say "not run" and only
// the Go clients are checked.
func TestHandshakeMatrixE2E(t *testing.T) {
	bin, _ := exec.LookPath("openssl")
	var osslVersion string
	if bin != "" {
		v, _ := exec.Command(bin, "version").Output()
		osslVersion = strings.TrimSpace(string(v))
	} else if os.Getenv("L7LB_REQUIRE_TOOLS") != "" {
		t.Fatal("openssl is not installed and L7LB_REQUIRE_TOOLS is set (.ci/run installs it)")
	} else {
		t.Log("openssl is not installed: the openssl s_client cells are not run (.ci/run installs it)")
	}
	m := startMatrixLB(t)
	versions := []uint16{tls.VersionTLS12, tls.VersionTLS13}
	check := func(what string, got handshake, want bool) string {
		t.Helper()
		if got.ok != want {
			t.Errorf("%s: %s, want %s", what, got, map[bool]string{true: "a handshake", false: "a refusal"}[want])
		}
		return got.String()
	}
	runOpenSSL := func(what string, v uint16, ca string, want bool) string {
		if bin == "" {
			return "not run"
		}
		return check("openssl "+what, m.openssl(bin, v, ca), want)
	}

	var tab strings.Builder
	fmt.Fprintf(&tab, "l7lb handshake matrix (%s; Go %s)\n\n", osslVersion, strings.TrimPrefix(goruntime.Version(), "go"))
	fmt.Fprintf(&tab, "| ssl-policy | openssl TLS 1.2 | openssl TLS 1.3 | Go gRPC TLS 1.2 | Go gRPC TLS 1.3 |\n|---|---|---|---|---|\n")
	names := tlspolicy.Names()
	if len(names) < 18 {
		t.Fatalf("tlspolicy lists %d policies; the README's table has 18", len(names))
	}
	for _, pol := range names {
		m.apply("    alb.ingress.kubernetes.io/ssl-policy: " + pol)
		var cells []string
		for _, v := range versions {
			cells = append(cells, runOpenSSL(fmt.Sprintf("%s against %s", versionOf[v], pol), v, "", policyAllows(pol, v)))
		}
		for _, v := range versions {
			cells = append(cells, check(fmt.Sprintf("Go gRPC %s against %s", versionOf[v], pol), m.goGRPC(v), policyAllows(pol, v)))
		}
		fmt.Fprintf(&tab, "| `%s` | %s |\n", strings.TrimPrefix(pol, "ELBSecurityPolicy-"), strings.Join(cells, " | "))
	}

	m.apply(`    alb.ingress.kubernetes.io/mutual-authentication: '[{"port":443,"mode":"verify","trustStore":"` + m.trustARN + `"}]'`)
	fmt.Fprintf(&tab, "\nmutual-authentication verify, trust store holding CA1, default ssl-policy (%s):\n\n", tlspolicy.Default)
	fmt.Fprintf(&tab, "| client certificate | openssl TLS 1.2 | openssl TLS 1.3 | Go SDK TLS 1.2 | Go SDK TLS 1.3 |\n|---|---|---|---|---|\n")
	for _, c := range []struct {
		name string
		file string
		ca   *pki.CA
		want bool
		// alert is the refusal's alert at TLS 1.2 and 1.3: TLS 1.2 has no
		// certificate_required, and Go sends handshake_failure there.
		alert [2]string
	}{
		{"none", "", nil, false, [2]string{"handshake failure", "certificate required"}},
		{"of CA2 (not in the trust store)", "ca2", m.ca2, false, [2]string{"bad certificate", "bad certificate"}},
		{"of CA1", "ca1", m.ca1, true, [2]string{}},
	} {
		alertIs := func(what string, cell string, i int) {
			t.Helper()
			if !c.want && !strings.HasSuffix(cell, c.alert[i]) {
				t.Errorf("%s: %q, want the alert %q", what, cell, c.alert[i])
			}
		}
		var cells []string
		for i, v := range versions {
			what := fmt.Sprintf("openssl %s, client certificate %s", versionOf[v], c.name)
			cells = append(cells, runOpenSSL(what, v, c.file, c.want))
			if bin != "" {
				alertIs(what, cells[len(cells)-1], i)
			}
		}
		for i, v := range versions {
			what := fmt.Sprintf("Go SDK %s, client certificate %s", versionOf[v], c.name)
			cells = append(cells, check(what, m.goSDK(v, c.ca), c.want))
			alertIs(what, cells[len(cells)-1], i)
		}
		fmt.Fprintf(&tab, "| %s | %s |\n", c.name, strings.Join(cells, " | "))
	}
	t.Logf("handshake matrix (+ handshake and a response, - refused with the alert or error shown):\n%s", tab.String())
	if out := os.Getenv("L7LB_MATRIX_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(tab.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
