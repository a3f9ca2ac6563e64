// Package e2e drives l7lb end to end on loopback: real gRPC clients and the
// official Milvus Go SDK, through l7lb's TLS listener, to the Milvus test
// cluster.
package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/ingress"
	"github.com/l7lb/l7lb/internal/config/manifest"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
)

const serverName = "milvus-demo.milvus.io"

// seedIngress is the seed's Ingress with {{ARN}} for the certificate and
// {{EXTRA}} for more annotations.
const seedIngress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  namespace: milvus
  name: milvus-demo
  annotations:
    alb.ingress.kubernetes.io/scheme: internet-facing
    alb.ingress.kubernetes.io/backend-protocol-version: GRPC
    alb.ingress.kubernetes.io/target-type: ip
    alb.ingress.kubernetes.io/listen-ports: '[{"HTTPS":443}]'
    alb.ingress.kubernetes.io/certificate-arn: "{{ARN}}"
{{EXTRA}}
spec:
  ingressClassName: alb
  rules:
    - host: milvus-demo.milvus.io
      http:
        paths:
        - path: /
          pathType: Prefix
          backend:
            service:
              name: milvus-demo
              port:
                number: 19530
`

// env is a Milvus test cluster with l7lb in front.
type env struct {
	cluster *fakemilvus.Cluster
	rt      *runtime.Runtime
	addr    string // the HTTPS listener for port 443
	addrs   map[int]net.Addr
	ca      *pki.CA
}

type envOptions struct {
	cluster fakemilvus.Options
	// extraAnnotations are added to the seed's Ingress, indented lines.
	extraAnnotations string
	// noEndpoints leaves the Service without targets.
	noEndpoints bool
	// endpoints, when set, are the Service's targets instead of the
	// cluster's replicas.
	endpoints []config.Endpoint
	// ingress replaces the seed's Ingress ({{ARN}} is still filled in).
	ingress string
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startEnv(t *testing.T, o envOptions) *env { return startEnvTB(t, o) }

func startEnvB(b *testing.B) *env {
	return startEnvTB(b, envOptions{cluster: fakemilvus.Options{Replicas: 3, MaxRecvMsgSize: 256 << 20}})
}

func startEnvTB(t testing.TB, o envOptions) *env {
	t.Helper()
	cl, err := fakemilvus.Start(o.cluster)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ca, err := pki.NewCA("e2e CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{serverName}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	store, err := certstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := store.Import(leaf.CertPEM(), ca.CertPEM(), leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	doc := seedIngress
	if o.ingress != "" {
		doc = o.ingress
	}
	doc = strings.Replace(doc, "{{ARN}}", c.ARN, 1)
	doc = strings.Replace(doc, "{{EXTRA}}", o.extraAnnotations, 1)
	objs, _, err := manifest.Parse("ingress.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	eps := o.endpoints
	if eps == nil && !o.noEndpoints {
		for _, r := range cl.Replicas() {
			host, port, _ := net.SplitHostPort(r.Addr())
			p, _ := strconv.Atoi(port)
			eps = append(eps, config.Endpoint{Address: host, Port: p, Ready: true})
		}
	}
	snap, err := ingress.Translate(objs, ingress.Options{Endpoints: map[string][]config.Endpoint{"milvus/milvus-demo": eps}})
	if err != nil {
		t.Fatal(err)
	}
	rt := runtime.New(runtime.Options{Log: slog.New(slog.DiscardHandler), Certs: store, Bind: func(config.Listener) string { return "127.0.0.1:0" }})
	if err := rt.Apply(snap); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rt.Shutdown(ctx)
	})
	e := &env{cluster: cl, rt: rt, addrs: rt.Addrs(), ca: ca}
	if a := e.addrs[443]; a != nil {
		e.addr = a.String()
	}
	return e
}

func (e *env) dialB(b *testing.B, opts ...grpc.DialOption) *grpc.ClientConn {
	return e.dialTB(b, opts...)
}

func ctxB(b *testing.B, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	b.Cleanup(cancel)
	return ctx
}

// dial opens a gRPC connection to l7lb with TLS and the seed's server name.
func (e *env) dial(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	return e.dialTB(t, opts...)
}

func (e *env) dialTB(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: e.ca.Pool(), ServerName: serverName})
	cc, err := grpc.NewClient(e.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// served returns each replica's served-RPC counter.
func (e *env) served() []int64 {
	var out []int64
	for _, r := range e.cluster.Replicas() {
		out = append(out, r.Served())
	}
	return out
}

func replicaOf(md metadata.MD) string {
	if v := md.Get(fakemilvus.ReplicaHeader); len(v) > 0 {
		return v[0]
	}
	return ""
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
