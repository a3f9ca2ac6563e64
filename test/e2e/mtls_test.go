package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
	"github.com/l7lb/l7lb/internal/truststore"
)

// mtlsEnv is l7lb with mutual-authentication on its HTTPS port, a trust
// store holding CA1 made the way a user makes it (l7lb truststore create),
// and one fakemilvus replica behind it.
type mtlsEnv struct {
	lb       *lbtest.LB
	replica  *fakemilvus.Replica
	ca1, ca2 *pki.CA
	trustARN string
}

func newCA(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// clientCert issues a client-auth certificate of ca.
func clientCert(t *testing.T, ca *pki.CA, cn string) *pki.Leaf {
	t.Helper()
	l, err := ca.IssueWith(pki.LeafOptions{CommonName: cn, NotAfter: time.Now().Add(time.Hour).Truncate(time.Second),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startMTLSEnv starts l7lb with mutual-authentication mode on port 443;
// verify names the trust store by the ARN create printed.
func startMTLSEnv(t *testing.T, mode string) *mtlsEnv {
	t.Helper()
	certs := lbtest.NewCerts(t, "e2e CA")
	e := &mtlsEnv{ca1: newCA(t, "clients CA1"), ca2: newCA(t, "clients CA2")}
	e.trustARN = lbtest.CreateTrustStore(t, certs.Dir, "clients", e.ca1)
	trust, err := truststore.Open(certs.Dir)
	if err != nil {
		t.Fatal(err)
	}
	entry := fmt.Sprintf(`{"port":443,"mode":%q}`, mode)
	if mode == "verify" {
		entry = fmt.Sprintf(`{"port":443,"mode":"verify","trustStore":%q}`, e.trustARN)
	}
	doc := lbtest.Ingress(`[{"HTTPS":443}]`, "    alb.ingress.kubernetes.io/mutual-authentication: '["+entry+"]'")
	lb, cl := lbtest.StartWithCluster(t, fakemilvus.Options{Replicas: 1},
		lbtest.Options{Ingress: doc, Certs: certs, Runtime: runtime.Options{TrustStores: trust, Log: logger(t)}})
	e.lb, e.replica = lb, cl.Replicas()[0]
	return e
}

// sdkClient connects the official Go SDK to l7lb over TLS, presenting
// cert when it is not nil: the SDK (v2.6) has no client-certificate field
// of its own (EnableTLSAuth only turns on TLS with system roots), so a
// user passes gRPC transport credentials in ClientConfig.DialOptions.
// grpc.WithReturnConnectionError makes the blocking dial report why the
// connection failed rather than only its deadline.
func sdkClient(ctx context.Context, e *mtlsEnv, cert *pki.Leaf) (*milvusclient.Client, error) {
	tc := &tls.Config{RootCAs: e.lb.CA.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{cert.TLSCertificate()}
	}
	opts := append(slices.Clone(milvusclient.DefaultGrpcOpts),
		grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithReturnConnectionError())
	return milvusclient.New(ctx, &milvusclient.ClientConfig{Address: e.lb.Addr(443), DialOptions: opts})
}

// TestSDKClientCertificateVerify: mutual-authentication verify with a
// trust store holding CA1. The Go SDK with a CA1 client certificate
// creates and lists collections, and fakemilvus receives the ALB's
// X-Amzn-Mtls-Clientcert-* headers for that certificate; without a
// certificate, or with one of CA2, the SDK cannot connect and says why.
func TestSDKClientCertificateVerify(t *testing.T) {
	e := startMTLSEnv(t, "verify")
	good := clientCert(t, e.ca1, "sdk-client-1")

	t.Run("CA1 certificate", func(t *testing.T) {
		ctx := ctxT(t, 30*time.Second)
		c, err := sdkClient(ctx, e, good)
		if err != nil {
			t.Fatalf("SDK with a CA1 client certificate: %v", err)
		}
		defer c.Close(ctx)
		if err := c.CreateCollection(ctx, milvusclient.SimpleCreateCollectionOptions("mtls", 8)); err != nil {
			t.Fatalf("CreateCollection: %v", err)
		}
		ok, err := c.HasCollection(ctx, milvusclient.NewHasCollectionOption("mtls"))
		if err != nil || !ok {
			t.Fatalf("HasCollection = %v, %v; want true", ok, err)
		}
		md := e.replica.LastMetadata()
		want := map[string]string{
			"x-amzn-mtls-clientcert-serial-number": fmt.Sprintf("%X", good.Cert.SerialNumber.Bytes()),
			"x-amzn-mtls-clientcert-issuer":        "CN=clients CA1,O=l7lb test PKI", // RFC 2253: last RDN first
			"x-amzn-mtls-clientcert-subject":       "CN=sdk-client-1",
			"x-amzn-mtls-clientcert-validity": "NotBefore=" + good.Cert.NotBefore.UTC().Format(time.RFC3339) +
				";NotAfter=" + good.Cert.NotAfter.UTC().Format(time.RFC3339),
		}
		for k, v := range want {
			if got := md.Get(k); len(got) != 1 || got[0] != v {
				t.Errorf("fakemilvus got %s = %q, want [%q]", k, got, v)
			}
			t.Logf("%s: %s", k, md.Get(k))
		}
		leaf := md.Get("x-amzn-mtls-clientcert-leaf")
		if len(leaf) != 1 {
			t.Fatalf("x-amzn-mtls-clientcert-leaf = %q, want one value", leaf)
		}
		if got := unescapePEM(t, leaf[0]); len(got) != 1 || !got[0].Equal(good.Cert) {
			t.Errorf("x-amzn-mtls-clientcert-leaf is not the client's certificate")
		}
		if v := md.Get("x-amzn-mtls-clientcert"); len(v) != 0 {
			t.Errorf("verify mode sent x-amzn-mtls-clientcert (passthrough's header): %q", v)
		}
	})

	refused := []struct {
		name string
		cert *pki.Leaf
		want string // in the SDK's error: the TLS alert l7lb sent
	}{
		{"no certificate", nil, "certificate required"},
		{"CA2 certificate", clientCert(t, e.ca2, "sdk-client-2"), "bad certificate"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := e.replica.Served()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := sdkClient(ctx, e, tc.cert)
			if err == nil {
				c.Close(ctx)
				t.Fatalf("SDK connected with %s; want the handshake refused", tc.name)
			}
			t.Logf("SDK error: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SDK error %q does not say %q", err, tc.want)
			}
			if n := e.replica.Served() - before; n != 0 {
				t.Errorf("fakemilvus served %d RPCs of a refused client", n)
			}
		})
	}
}

// TestSDKClientCertificatePassthrough: in passthrough mode any client
// certificate is let through, and fakemilvus receives the chain the
// client sent, URL-encoded PEM, in X-Amzn-Mtls-Clientcert; a client
// without a certificate is served too (the ALB does the same).
func TestSDKClientCertificatePassthrough(t *testing.T) {
	e := startMTLSEnv(t, "passthrough")
	ctx := ctxT(t, 30*time.Second)
	// A certificate of CA2, which no trust store holds: passthrough does
	// not verify.
	cert := clientCert(t, e.ca2, "passthrough-client")
	c, err := sdkClient(ctx, e, cert)
	if err != nil {
		t.Fatalf("SDK with a client certificate: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
		t.Fatalf("ListCollections: %v", err)
	}
	md := e.replica.LastMetadata()
	v := md.Get("x-amzn-mtls-clientcert")
	if len(v) != 1 {
		t.Fatalf("x-amzn-mtls-clientcert = %q, want one value", v)
	}
	if strings.ContainsAny(v[0], " \n") || !strings.HasPrefix(v[0], "-----BEGIN%20CERTIFICATE-----%0A") {
		t.Errorf("x-amzn-mtls-clientcert is not URL-encoded PEM: %.80q", v[0])
	}
	if got := unescapePEM(t, v[0]); len(got) != 1 || !got[0].Equal(cert.Cert) {
		t.Errorf("x-amzn-mtls-clientcert holds %d certificates, want the client's one", len(got))
	}
	for _, h := range []string{"x-amzn-mtls-clientcert-subject", "x-amzn-mtls-clientcert-serial-number"} {
		if got := md.Get(h); len(got) != 0 {
			t.Errorf("passthrough sent %s = %q (verify's header)", h, got)
		}
	}

	// No certificate at all: passthrough asks but does not require one.
	c2, err := sdkClient(ctx, e, nil)
	if err != nil {
		t.Fatalf("SDK without a client certificate, passthrough: %v", err)
	}
	defer c2.Close(ctx)
	if _, err := c2.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
		t.Fatalf("ListCollections without a certificate: %v", err)
	}
	if got := e.replica.LastMetadata().Get("x-amzn-mtls-clientcert"); len(got) != 0 {
		t.Errorf("no client certificate, yet x-amzn-mtls-clientcert = %.80q", got)
	}
}

// unescapePEM undoes the ALB's URL encoding of a PEM header value and
// parses the certificates.
func unescapePEM(t *testing.T, v string) []*x509.Certificate {
	t.Helper()
	// The ALB leaves '+' as it is: PathUnescape, unlike QueryUnescape,
	// does not read it as a space.
	raw, err := url.PathUnescape(v)
	if err != nil {
		t.Fatalf("header is not URL-encoded: %v", err)
	}
	var out []*x509.Certificate
	rest := []byte(raw)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("header's PEM: %v", err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("header has %d bytes after its PEM blocks", len(rest))
	}
	return out
}
