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
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/runtime"
)

const serverName = lbtest.ServerName

// seedIngress is the seed's Ingress with {{ARN}} for the certificate and
// {{EXTRA}} for more annotations.
var seedIngress = lbtest.Ingress(`[{"HTTPS":443}]`, `    alb.ingress.kubernetes.io/scheme: internet-facing
{{EXTRA}}`)

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
	doc := seedIngress
	if o.ingress != "" {
		doc = o.ingress
	}
	lo := lbtest.Options{Ingress: strings.Replace(doc, "{{EXTRA}}", o.extraAnnotations, 1), CAName: "e2e CA"}
	if o.endpoints != nil || o.noEndpoints {
		lo.Endpoints = map[string][]config.Endpoint{lbtest.Service: o.endpoints}
	}
	lb, cl := lbtest.StartWithCluster(t, o.cluster, lo)
	return &env{cluster: cl, rt: lb.Runtime, addr: lb.Addr(443), addrs: lb.Addrs, ca: lb.CA}
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
