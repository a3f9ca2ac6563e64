package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// TestStreamingTransparency sends every kind of RPC through l7lb and checks
// that messages, metadata, trailers and statuses arrive as the backend
// sent them.
func TestStreamingTransparency(t *testing.T) {
	e := startEnv(t, envOptions{})
	cli := echo.NewClient(e.dial(t))

	t.Run("unary with metadata both ways", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(ctxT(t, 10*time.Second), "x-custom", "v1", "x-blob-bin", string([]byte{0, 1, 2, 255}))
		var hdr, trl metadata.MD
		got, err := cli.Unary(ctx, []byte("hello"), grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "hello" {
			t.Fatalf("reply %q", got)
		}
		if v := hdr.Get(echo.EchoPrefix + "x-custom"); len(v) != 1 || v[0] != "v1" {
			t.Errorf("echoed header = %v (headers %v)", v, hdr)
		}
		if v := hdr.Get(echo.EchoPrefix + "x-blob-bin"); len(v) != 1 || v[0] != string([]byte{0, 1, 2, 255}) {
			t.Errorf("echoed binary header = %q", v)
		}
		if v := trl.Get(echo.EchoPrefix + "x-custom"); len(v) != 1 || v[0] != "v1" {
			t.Errorf("echoed trailer = %v (trailers %v)", v, trl)
		}
		if replicaOf(hdr) == "" {
			t.Errorf("no replica header in %v", hdr)
		}
	})

	t.Run("client streaming", func(t *testing.T) {
		var parts [][]byte
		var want []byte
		for i := 0; i < 20; i++ {
			p := bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
			parts = append(parts, p)
			want = append(want, p...)
		}
		got, err := cli.ClientStream(ctxT(t, 10*time.Second), parts)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, want %d", len(got), len(want))
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		replies, err := cli.ServerStream(ctxT(t, 10*time.Second), 16, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if len(replies) != 16 {
			t.Fatalf("%d replies, want 16", len(replies))
		}
		for i, r := range replies {
			if len(r) != 1024 {
				t.Fatalf("reply %d: %d bytes", i, len(r))
			}
		}
	})

	t.Run("bidirectional ping-pong", func(t *testing.T) {
		// Each ping waits for its pong: a balancer that held the request
		// until the client finished sending would deadlock here.
		var pings [][]byte
		for i := 0; i < 50; i++ {
			pings = append(pings, []byte(fmt.Sprintf("ping-%d", i)))
		}
		pongs, err := cli.PingPong(ctxT(t, 10*time.Second), pings)
		if err != nil {
			t.Fatal(err)
		}
		for i := range pings {
			if !bytes.Equal(pongs[i], pings[i]) {
				t.Fatalf("pong %d = %q", i, pongs[i])
			}
		}
	})

	t.Run("trailers-only error with details", func(t *testing.T) {
		for _, code := range []codes.Code{codes.NotFound, codes.PermissionDenied, codes.Unavailable, codes.Internal} {
			ctx := echo.WithFailCode(ctxT(t, 10*time.Second), uint32(code), "it failed: 100% sure")
			_, err := cli.Unary(ctx, []byte("x"))
			st := status.Convert(err)
			if st.Code() != code || st.Message() != "it failed: 100% sure" {
				t.Fatalf("status = %v %q, want %v", st.Code(), st.Message(), code)
			}
			found := false
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Reason == echo.FailReason && ei.Domain == echo.FailDomain {
					found = true
				}
			}
			if !found {
				t.Fatalf("grpc-status-details-bin lost: details %v", st.Details())
			}
		}
	})

	t.Run("deadline passed on", func(t *testing.T) {
		ctx := echo.WithReportDeadline(ctxT(t, 5*time.Second))
		var trl metadata.MD
		if _, err := cli.Unary(ctx, []byte("x"), grpc.Trailer(&trl)); err != nil {
			t.Fatal(err)
		}
		v := trl.Get(echo.TrailerDeadline)
		if len(v) != 1 {
			t.Fatalf("no %s trailer: %v", echo.TrailerDeadline, trl)
		}
		ms, err := strconv.Atoi(v[0])
		if err != nil || ms <= 0 || ms > 5000 {
			t.Fatalf("backend saw a deadline of %q ms, want within (0, 5000]", v[0])
		}
	})

	t.Run("deadline enforced", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(echo.WithHold(context.Background(), 5*time.Second), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := cli.Unary(ctx, []byte("x"))
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v", d)
		}
	})

	t.Run("client cancel resets the backend stream", func(t *testing.T) {
		before := cancelled(e, echo.ServerStreamMethod)
		calls := echoCalls(e)
		ctx, cancel := context.WithCancel(echo.WithHold(context.Background(), 10*time.Second))
		defer cancel()
		s, err := cli.OpenServerStream(ctx, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		// Cancel once the call is in the backend's handler, where it is
		// held 10 s: the cancel then has a running call to reach.
		deadline := time.Now().Add(3 * time.Second)
		for echoCalls(e) == calls {
			if time.Now().After(deadline) {
				t.Fatal("the call never reached the backend")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if _, err := s.Recv(); status.Code(err) != codes.Canceled {
			t.Fatalf("Recv after cancel: %v", err)
		}
		deadline = time.Now().Add(3 * time.Second)
		for cancelled(e, echo.ServerStreamMethod) == before {
			if time.Now().After(deadline) {
				t.Fatal("the backend never saw the cancellation")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// echoCalls is the number of Echo RPCs that reached a backend handler.
func echoCalls(e *env) int64 {
	var n int64
	for _, r := range e.cluster.Replicas() {
		n += r.Echo().Calls()
	}
	return n
}

// cancelled is the number of RPCs of method the backends saw cancelled
// (the earlier subtests' cancels, counted late, are of other methods).
func cancelled(e *env, method string) int {
	n := 0
	for _, r := range e.cluster.Replicas() {
		for _, m := range r.Echo().CancelledMethods() {
			if m == method {
				n++
			}
		}
	}
	return n
}

// TestBalancerErrorsAreGRPC checks the errors l7lb makes itself.
func TestBalancerErrorsAreGRPC(t *testing.T) {
	t.Run("no rule for host", func(t *testing.T) {
		e := startEnv(t, envOptions{})
		// An unknown server name also gets the default certificate.
		creds := credentials.NewTLS(&tls.Config{ServerName: "other.example.com", InsecureSkipVerify: true})
		cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(creds), grpc.WithAuthority("other.example.com"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cli := echo.NewClient(cc)
		_, err = cli.Unary(ctxT(t, 5*time.Second), []byte("x"))
		st := status.Convert(err)
		if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), `"other.example.com"`) || !strings.Contains(st.Message(), echo.UnaryMethod) {
			t.Fatalf("status = %v %q; want UNIMPLEMENTED naming host and path", st.Code(), st.Message())
		}
	})
	t.Run("no targets", func(t *testing.T) {
		e := startEnv(t, envOptions{noEndpoints: true})
		cli := echo.NewClient(e.dial(t))
		_, err := cli.Unary(ctxT(t, 5*time.Second), []byte("x"))
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "milvus/milvus-demo:19530") {
			t.Fatalf("status = %v %q; want UNAVAILABLE naming the target group", st.Code(), st.Message())
		}
	})
	t.Run("target down", func(t *testing.T) {
		e := startEnv(t, envOptions{cluster: fakeOpts(1)})
		e.cluster.Replicas()[0].Kill()
		cli := echo.NewClient(e.dial(t))
		_, err := cli.Unary(ctxT(t, 5*time.Second), []byte("x"), grpc.WaitForReady(false))
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "milvus/milvus-demo:19530") {
			t.Fatalf("status = %v %q; want UNAVAILABLE naming the target group", st.Code(), st.Message())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("timed out instead of failing fast")
		}
	})
}
