package engine

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
)

// testTimeout bounds every test; SDK Await loops stop on context expiry.
const testTimeout = 30 * time.Second

// startReplica serves e.Server(opts) on a loopback port and returns its address.
func startReplica(t *testing.T, e *Engine, opts ServerOptions) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	srv := grpc.NewServer()
	milvuspb.RegisterMilvusServiceServer(srv, e.Server(opts))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// newSDKClient connects the official Go SDK (which calls Connect first).
func newSDKClient(ctx context.Context, t *testing.T, addr string) *milvusclient.Client {
	t.Helper()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: addr})
	if err != nil {
		t.Fatalf("milvusclient.New(%s): %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// newRawClient is a bare generated stub, for checking exact reply bodies.
func newRawClient(t *testing.T, addr string) milvuspb.MilvusServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return milvuspb.NewMilvusServiceClient(conn)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}
