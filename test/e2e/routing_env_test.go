package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
	"github.com/l7lb/l7lb/internal/lbtest"
)

const (
	clusterOne = lbtest.ClusterOne
	clusterTwo = lbtest.ClusterTwo
)

var (
	routingIngress = lbtest.RoutingIngress
	pathTo         = lbtest.Path
	served         = lbtest.Served
)

// weightedAction is actions.NAME forwarding to the two clusters by weight.
func weightedAction(name string, one, two int) string {
	return fmt.Sprintf(`    alb.ingress.kubernetes.io/actions.%s: >
      {"type":"forward","forwardConfig":{"targetGroups":[
      {"serviceName":"milvus-demo","servicePort":19530,"weight":%d},
      {"serviceName":"milvus-two","servicePort":"19530","weight":%d}]}}`, name, one, two)
}

// twoClusters adds the Go SDK helpers of these tests.
type twoClusters struct{ *lbtest.TwoClusters }

func startTwoClusters(t testing.TB, doc string) twoClusters {
	return twoClusters{lbtest.StartTwoClusters(t, doc)}
}

// rpc is one gRPC call attempt a Go SDK client made on the wire.
type rpc struct {
	method     string // "Search"
	collection string // the request's collection_name, if it has one
	cluster    string // from the replica trailer; "" when no replica answered
	start, end time.Time
	err        error
}

// rpcLog records every RPC of the SDK clients it is attached to. It is a
// gRPC stats handler, not an interceptor: the SDK chains its own retry
// interceptor (6 attempts on UNAVAILABLE) inside any interceptor a
// caller adds, which would hide failed attempts; a stats handler sees
// each attempt.
type rpcLog struct {
	mu   sync.Mutex
	rpcs []rpc
}

type rpcKey struct{}

func (l *rpcLog) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, rpcKey{}, &rpc{method: path.Base(info.FullMethodName)})
}

func (l *rpcLog) HandleRPC(ctx context.Context, s stats.RPCStats) {
	r, _ := ctx.Value(rpcKey{}).(*rpc)
	if r == nil || !s.IsClient() {
		return
	}
	switch s := s.(type) {
	case *stats.Begin:
		r.start = s.BeginTime
	case *stats.OutPayload:
		if r.collection == "" {
			r.collection = collectionOf(s.Payload)
		}
	case *stats.InTrailer:
		if v := s.Trailer.Get(fakemilvus.ReplicaHeader); len(v) > 0 {
			r.cluster, _, _ = strings.Cut(v[0], "/")
		}
	case *stats.End:
		r.err, r.end = s.Error, s.EndTime
		l.mu.Lock()
		l.rpcs = append(l.rpcs, *r)
		l.mu.Unlock()
	}
}

func (l *rpcLog) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (l *rpcLog) HandleConn(context.Context, stats.ConnStats)                       {}

// collectionOf reads the collection_name field of a request message, by
// reflection (the SDK's own view of what it sent).
func collectionOf(req any) string {
	m, ok := req.(proto.Message)
	if !ok {
		return ""
	}
	r := m.ProtoReflect()
	f := r.Descriptor().Fields().ByName("collection_name")
	if f == nil || f.Kind() != protoreflect.StringKind || f.IsList() {
		return ""
	}
	return r.Get(f).String()
}

func (l *rpcLog) snapshot() []rpc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.rpcs)
}

func (l *rpcLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.rpcs)
}

// sdkClient connects the official Go SDK to l7lb over TLS with the seed's
// server name (SNI), using database db ("" for the SDK's default: no
// dbname header). Every RPC is recorded in log when it is not nil.
func (e twoClusters) sdkClient(t testing.TB, db string, log *rpcLog) *milvusclient.Client {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: e.LB.CA.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12})
	opts := append(slices.Clone(milvusclient.DefaultGrpcOpts), grpc.WithTransportCredentials(creds))
	if log != nil {
		opts = append(opts, grpc.WithStatsHandler(log))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: e.Addr, DBName: db, DialOptions: opts})
	if err != nil {
		t.Fatalf("Go SDK client (db %q) through l7lb: %v", db, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) }) //nolint:errcheck // end of test
	return c
}

// dialEcho opens a plain gRPC connection to l7lb (TLS, server name) for
// the fake clusters' echo service.
func (e twoClusters) dialEcho(t testing.TB) *echo.Client {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: e.LB.CA.Pool(), ServerName: serverName})
	cc, err := grpc.NewClient(e.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return echo.NewClient(cc)
}

const testDim = lbtest.SeedDim

var (
	createLoaded = lbtest.CreateLoaded
	rowsOf       = lbtest.SeedRows
)
