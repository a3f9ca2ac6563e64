package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

func fakeOpts(replicas int) fakemilvus.Options {
	return fakemilvus.Options{Replicas: replicas}
}

// TestLargeMessages sends a 100 MiB request and gets a 100 MiB reply
// through l7lb's default 256 MiB limit.
func TestLargeMessages(t *testing.T) {
	e := startEnv(t, envOptions{cluster: fakemilvus.Options{Replicas: 3, MaxRecvMsgSize: 256 << 20}})
	cc := e.dial(t, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20), grpc.MaxCallRecvMsgSize(256<<20)))
	payload := bytes.Repeat([]byte("0123456789abcdef"), (100<<20)/16)
	got, err := echo.NewClient(cc).Unary(ctxT(t, time.Minute), payload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("reply of %d bytes differs from the %d-byte request", len(got), len(payload))
	}
}

// TestMessageLimit sets l7lb.io/max-message-bytes and checks that a larger
// request gets RESOURCE_EXHAUSTED from l7lb, as a gRPC status.
func TestMessageLimit(t *testing.T) {
	e := startEnv(t, envOptions{extraAnnotations: `    l7lb.io/max-message-bytes: "1Mi"`})
	cc := e.dial(t, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	cli := echo.NewClient(cc)
	if _, err := cli.Unary(ctxT(t, 10*time.Second), make([]byte, 1<<20-16)); err != nil {
		t.Fatalf("a message under the limit failed: %v", err)
	}
	for _, size := range []int{1<<20 + 1, 8 << 20} {
		_, err := cli.Unary(ctxT(t, 10*time.Second), make([]byte, size))
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "l7lb") {
			t.Fatalf("%d bytes: status %v %q, want RESOURCE_EXHAUSTED from l7lb", size, st.Code(), st.Message())
		}
	}
	// A reply over the limit is refused the same way.
	ctx := echo.WithReplies(ctxT(t, 10*time.Second), 1, 2<<20)
	_, err := cli.ServerStream(ctx, 1, 2<<20)
	_ = ctx
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted {
		t.Fatalf("2 MiB reply: status %v %q, want RESOURCE_EXHAUSTED", st.Code(), st.Message())
	}
}
