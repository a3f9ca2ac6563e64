package e2e

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// TestClientKeepaliveAccepted: Milvus SDKs ping every 5-10 s, also without
// calls. l7lb must answer those pings and never send GOAWAY
// too_many_pings, so the client keeps its one connection.
func TestClientKeepaliveAccepted(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 22 s")
	}
	t.Parallel()
	e := startEnv(t, envOptions{})
	var dials atomic.Int32
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	cc := e.dial(t,
		grpc.WithContextDialer(dialer),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}))
	cli := echo.NewClient(cc)
	if _, err := cli.Unary(ctxT(t, 5*time.Second), []byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(22 * time.Second) // two pings without any call
	if _, err := cli.Unary(ctxT(t, 5*time.Second), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("client dialled %d times; l7lb closed its connection despite legitimate pings", n)
	}
}
