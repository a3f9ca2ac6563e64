package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/truststore"
)

var trustARN = regexp.MustCompile(`"TrustStoreArn": "(arn:l7lb:elasticloadbalancing:local:000000000000:truststore/clients/[0-9a-f]{16})"`)

// TestTrustStoreSecret: `l7lb truststore create --kubernetes` writes the
// trust store Secret into the real API server; an Ingress with
// mutual-authentication verify naming its ARN is served with it: the Go
// SDK with a client certificate of the trust store's CA gets its RPCs
// through, and without one it is refused at the handshake. Then `l7lb
// truststore modify --kubernetes` puts another CA in the bundle, and the
// running controller verifies new handshakes against it, no restart.
func TestTrustStoreSecret(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	b := startBackend(t, ctx)
	deleteIngressesAtEnd(t, "mtls-demo")
	caA, err := pki.NewCA("l7lb kube clients A", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caB, err := pki.NewCA("l7lb kube clients B", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bundleA, bundleB := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	if err := os.WriteFile(bundleA, caA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundleB, caB.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	kubeArgs := []string{"--kubernetes", "--kubeconfig", shared.kubeconfigPath(), "--namespace", controlNS}
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := truststore.Command(ctx, append(args, kubeArgs...), &out, &errOut); code != 0 {
			t.Fatalf("l7lb truststore %v: exit %d\n%s%s", args, code, out.String(), errOut.String())
		}
		return out.String()
	}
	out := run("create", "--name", "clients", "--ca-certificates-bundle", "fileb://"+bundleA)
	m := trustARN.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("truststore create printed no ARN:\n%s", out)
	}
	arn := m[1]
	t.Logf("l7lb truststore create --kubernetes:\n%s", out)
	t.Cleanup(func() {
		var sink bytes.Buffer
		truststore.Command(context.Background(), append([]string{"delete", "--trust-store-arn", arn}, kubeArgs...), &sink, &sink)
	})
	sec, err := shared.client.CoreV1().Secrets(controlNS).Get(ctx, truststore.KubeSecretName("clients"), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the trust store Secret: %v", err)
	}
	t.Logf("Secret %s/%s labels %v", sec.Namespace, sec.Name, sec.Labels)

	r := startReplica(t, replicaOptions{identity: "trust-a", publish: "127.0.0.1", classes: []string{"alb"}, lease: "l7lb-trust"})
	createIngress(t, ctx, ingressFor("mtls-demo", serverName, map[string]string{
		"alb.ingress.kubernetes.io/mutual-authentication": `[{"port":443,"mode":"verify","trustStore":"` + arn + `"}]`,
	}))
	addr := r.addr(t)

	leafA, err := caA.Issue([]string{"client-a"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leafB, err := caB.Issue([]string{"client-b"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// call runs one ListCollections with client certificate cert (nil:
	// none) on a new connection, so each call is a new handshake. A
	// refused handshake makes the SDK retry until the deadline, so calls
	// expected to fail get a short one: an accepted client answers in
	// milliseconds.
	call := func(cert *pki.Leaf, within time.Duration) error {
		cctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		cfg := &tls.Config{RootCAs: b.ca.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{cert.TLSCertificate()}
		}
		opts := append(slices.Clone(milvusclient.DefaultGrpcOpts), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		cli, err := milvusclient.New(cctx, &milvusclient.ClientConfig{Address: addr, DialOptions: opts})
		if err != nil {
			return err
		}
		defer cli.Close(context.Background())
		_, err = cli.ListCollections(cctx, milvusclient.NewListCollectionOption())
		return err
	}
	// The listener may first come up without the Ingress's mTLS if the
	// controller synced before it existed; wait for the state to settle.
	eventually(t, 30*time.Second, "client A through, no certificate refused", func() (bool, string) {
		errA, errNone := call(leafA, 10*time.Second), call(nil, 2*time.Second)
		return errA == nil && errNone != nil, fmt.Sprintf("with A: %v; without: %v", errA, errNone)
	})
	if err := call(leafB, 2*time.Second); err == nil {
		t.Fatal("a client certificate of CA B got through a trust store of CA A")
	}
	// What the SDK reports as a deadline is the handshake's refusal: the
	// server's alert, read on a raw TLS connection.
	tlsErr := func(cert *pki.Leaf) error {
		cfg := &tls.Config{RootCAs: b.ca.Pool(), ServerName: serverName, NextProtos: []string{"h2"}}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{cert.TLSCertificate()}
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		// The HTTP/2 client preface and an empty SETTINGS frame; the
		// server answers with its SETTINGS, or its alert.
		if _, err := c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 1))
		return err
	}
	type probe struct {
		name string
		cert *pki.Leaf
		want string // "" for accepted
	}
	rawHandshakes := func(when string, probes []probe) {
		t.Helper()
		for _, p := range probes {
			err := tlsErr(p.cert)
			if (p.want == "" && err != nil) || (p.want != "" && (err == nil || !strings.Contains(err.Error(), p.want))) {
				t.Errorf("%s: raw handshake with client certificate %s: %v, want %q", when, p.name, err, p.want)
			}
			t.Logf("%s: raw handshake, client certificate %s: %v", when, p.name, err)
		}
	}
	rawHandshakes("before modify", []probe{{"CA A", leafA, ""}, {"CA B", leafB, "tls: bad certificate"}, {"none", nil, "tls: certificate required"}})
	t.Logf("before modify: CA A client ok, CA B and no certificate refused")

	out = run("modify", "--trust-store-arn", arn, "--ca-certificates-bundle", "fileb://"+bundleB)
	t.Logf("l7lb truststore modify --kubernetes:\n%s", out)
	eventually(t, 30*time.Second, "the new bundle verifying new handshakes", func() (bool, string) {
		errA, errB := call(leafA, 2*time.Second), call(leafB, 10*time.Second)
		return errA != nil && errB == nil, fmt.Sprintf("with A: %v; with B: %v", errA, errB)
	})
	if err := call(nil, 2*time.Second); err == nil {
		t.Fatal("a client without a certificate got through after modify")
	}
	rawHandshakes("after modify", []probe{{"CA A", leafA, "tls: bad certificate"}, {"CA B", leafB, ""}, {"none", nil, "tls: certificate required"}})
	_, ts, err := r.ctl.TrustStores().Load(arn)
	if err != nil || ts.NumberOfCaCertificates != 1 || ts.Subjects[0] != caB.Cert.Subject.ToRDNSequence().String() {
		t.Fatalf("controller's trust store after modify: %+v, %v", ts, err)
	}
	t.Logf("after modify: CA B client ok, CA A and no certificate refused")
}
