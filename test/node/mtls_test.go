package node_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
)

// mtlsReport is the JSON line mtls.mjs prints.
type mtlsReport struct {
	OK      bool   `json:"ok"`
	TLSMode int    `json:"tls_mode"`
	Stage   string `json:"stage"`
	Error   string `json:"error"`
}

// TestNodeSDKClientCertificate: l7lb with mutual-authentication verify and
// a trust store holding CA1 (made by `l7lb truststore create`'s code). The
// Node SDK with tls.privateKeyPath and tls.certChainPath of a CA1 client
// certificate lists collections, and the target gets the certificate's
// subject; without a certificate, or with one of CA2, the SDK fails to
// connect with the TLS alert in its error.
func TestNodeSDKClientCertificate(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("Node.js (`node`) is not on PATH: %v; install Node.js 20 or later, then %s", err, installHint)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@zilliz", "milvus2-sdk-node", "package.json")); err != nil {
		t.Fatalf("the Milvus Node SDK is not installed: %v; %s", err, installHint)
	}

	files := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certs := lbtest.NewCerts(t, "node mTLS CA")
	ca1, err := pki.NewCA("clients CA1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := pki.NewCA("clients CA2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lb, cl := lbtest.StartVerify(t, certs, ca1)
	replica := cl.Replicas()[0]
	caFile := write("server-ca.pem", lb.CA.CertPEM())

	issue := func(ca *pki.CA, name string) (certFile, keyFile string, leaf *pki.Leaf) {
		l, err := ca.IssueWith(pki.LeafOptions{CommonName: name, NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			t.Fatal(err)
		}
		return write(name+"-cert.pem", l.CertPEM()), write(name+"-key.pem", l.KeyPEM()), l
	}
	goodCert, goodKey, _ := issue(ca1, "node-client-ca1")
	badCert, badKey, _ := issue(ca2, "node-client-ca2")

	run := func(t *testing.T, certFile, keyFile string) mtlsReport {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "mtls.mjs")
		cmd.Dir = dir
		cmd.Env = append(withoutProxy(os.Environ()),
			"L7LB_ADDR="+lb.Addr(443), "L7LB_CA_FILE="+caFile, "L7LB_SERVER_NAME="+lbtest.ServerName,
			"L7LB_CLIENT_CERT="+certFile, "L7LB_CLIENT_KEY="+keyFile)
		cmd.WaitDelay = 5 * time.Second
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			t.Fatalf("node mtls.mjs: %v\n%s%s", err, so.String(), se.String())
		}
		lines := strings.Split(strings.TrimSpace(so.String()), "\n")
		var rep mtlsReport
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
			t.Fatalf("mtls.mjs printed %q: %v (stderr %s)", so.String(), err, se.String())
		}
		t.Logf("mtls.mjs: %s", lines[len(lines)-1])
		return rep
	}

	t.Run("CA1 certificate", func(t *testing.T) {
		rep := run(t, goodCert, goodKey)
		if !rep.OK {
			t.Fatalf("the Node SDK with a CA1 client certificate failed at %s: %s", rep.Stage, rep.Error)
		}
		if rep.TLSMode != 2 { // TLS_MODE.TWO_WAY in the SDK's dist/milvus/const/client.js
			t.Errorf("the SDK's TLS mode is %d, want 2 (TWO_WAY: it presents the client certificate)", rep.TLSMode)
		}
		if got := replica.LastMetadata().Get("x-amzn-mtls-clientcert-subject"); len(got) != 1 || got[0] != "CN=node-client-ca1" {
			t.Errorf("the target got x-amzn-mtls-clientcert-subject %q, want [CN=node-client-ca1]", got)
		}
	})
	for _, tc := range []struct {
		name      string
		cert, key string
		want      string
	}{
		{"no certificate", "", "", "certificate required"},
		{"CA2 certificate", badCert, badKey, "bad certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := replica.Served()
			rep := run(t, tc.cert, tc.key)
			if rep.OK {
				t.Fatalf("the Node SDK with %s was served; want the handshake refused", tc.name)
			}
			if !strings.Contains(strings.ToLower(rep.Error), tc.want) {
				t.Errorf("the SDK's error %q does not name the alert %q", rep.Error, tc.want)
			}
			if n := replica.Served() - before; n != 0 {
				t.Errorf("the target served %d RPCs of a refused client", n)
			}
		})
	}
}
