package echo

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// start serves a fresh Echo server on a loopback port.
func start(t *testing.T) (*Server, *Client, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	gs := grpc.NewServer()
	srv := NewServer()
	srv.Register(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return srv, NewClient(cc), lis.Addr().String()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestCallKinds(t *testing.T) {
	_, c, _ := start(t)
	tests := []struct {
		name string
		call func(ctx context.Context) ([][]byte, error)
		want [][]byte
	}{
		{"unary", func(ctx context.Context) ([][]byte, error) {
			b, err := c.Unary(ctx, []byte("hello"))
			return [][]byte{b}, err
		}, [][]byte{[]byte("hello")}},
		{"client stream concatenates", func(ctx context.Context) ([][]byte, error) {
			b, err := c.ClientStream(ctx, [][]byte{[]byte("ab"), []byte("cd"), []byte("e")})
			return [][]byte{b}, err
		}, [][]byte{[]byte("abcde")}},
		{"server stream N of M", func(ctx context.Context) ([][]byte, error) {
			return c.ServerStream(ctx, 3, 4)
		}, [][]byte{[]byte("abcd"), []byte("abcd"), []byte("abcd")}},
		{"server stream zero replies", func(ctx context.Context) ([][]byte, error) {
			return c.ServerStream(ctx, 0, 4)
		}, nil},
		{"bidi ping-pong", func(ctx context.Context) ([][]byte, error) {
			return c.PingPong(ctx, [][]byte{[]byte("1"), []byte("22"), []byte("333")})
		}, [][]byte{[]byte("1"), []byte("22"), []byte("333")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call(testCtx(t))
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d replies %q, want %q", len(got), got, tc.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Errorf("reply %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestMetadataEcho(t *testing.T) {
	_, c, _ := start(t)
	tests := []struct {
		name string
		call func(ctx context.Context, opts ...grpc.CallOption) error
	}{
		{"unary", func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := c.Unary(ctx, []byte("x"), opts...)
			return err
		}},
		{"client stream", func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := c.ClientStream(ctx, [][]byte{[]byte("x")}, opts...)
			return err
		}},
		{"server stream", func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := c.ServerStream(ctx, 2, 1, opts...)
			return err
		}},
		{"bidi", func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := c.PingPong(ctx, [][]byte{[]byte("x")}, opts...)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-user", "alice", "x-trace-bin", "\x00\x01")
			var hdr, trl metadata.MD
			if err := tc.call(ctx, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
				t.Fatalf("call: %v", err)
			}
			for _, md := range []metadata.MD{hdr, trl} {
				if got := md.Get("echo-x-user"); len(got) != 1 || got[0] != "alice" {
					t.Errorf("echo-x-user = %q in %v", got, md)
				}
				if got := md.Get("echo-x-trace-bin"); len(got) != 1 || got[0] != "\x00\x01" {
					t.Errorf("echo-x-trace-bin = %q", got)
				}
				if len(md.Get("echo-user-agent")) != 1 {
					t.Errorf("user-agent not echoed in %v", md)
				}
			}
		})
	}
}

func TestFailCodeTrailersOnlyWithDetails(t *testing.T) {
	_, c, _ := start(t)
	tests := []struct {
		name string
		code codes.Code
		call func(ctx context.Context, opts ...grpc.CallOption) error
	}{
		{"unary", codes.ResourceExhausted, func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := c.Unary(ctx, []byte("x"), opts...)
			return err
		}},
		{"client stream", codes.Unavailable, func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := c.ClientStream(ctx, [][]byte{[]byte("x")}, opts...)
			return err
		}},
		{"server stream", codes.PermissionDenied, func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := c.ServerStream(ctx, 2, 1, opts...)
			return err
		}},
		{"bidi", codes.Internal, func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := c.PingPong(ctx, [][]byte{[]byte("x")}, opts...)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := WithFailCode(metadata.AppendToOutgoingContext(testCtx(t), "x-user", "bob"), uint32(tc.code), "boom: 100%")
			var hdr, trl metadata.MD
			err := tc.call(ctx, grpc.Header(&hdr), grpc.Trailer(&trl))
			st := status.Convert(err)
			if st.Code() != tc.code || st.Message() != "boom: 100%" {
				t.Fatalf("status = %v %q, want %v %q", st.Code(), st.Message(), tc.code, "boom: 100%")
			}
			if len(st.Details()) != 1 {
				t.Fatalf("details = %v, want one ErrorInfo", st.Details())
			}
			info, ok := st.Details()[0].(*errdetails.ErrorInfo)
			if !ok || info.GetReason() != FailReason || info.GetDomain() != FailDomain {
				t.Errorf("detail = %v", st.Details()[0])
			}
			if got := trl.Get("echo-x-user"); len(got) != 1 || got[0] != "bob" {
				t.Errorf("trailer echo-x-user = %q (trailer %v)", got, trl)
			}
			if len(hdr.Get("echo-x-user")) != 0 {
				t.Errorf("headers were sent before the failure: %v", hdr)
			}
		})
	}
}

// TestFailCodeOnTheWire proves the failure is trailers-only at the HTTP/2
// level: one HEADERS frame with grpc-status, no body, no separate trailers.
func TestFailCodeOnTheWire(t *testing.T) {
	_, _, addr := start(t)
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	msg, err := proto.Marshal(wrapperspb.Bytes([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, "http://"+addr+UnaryMethod, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	req.Header.Set(MDFailCode, strconv.Itoa(int(codes.Aborted)))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("grpc-status"); got != strconv.Itoa(int(codes.Aborted)) {
		t.Errorf("grpc-status in headers = %q, want %d (headers %v)", got, codes.Aborted, resp.Header)
	}
	if resp.Header.Get("grpc-status-details-bin") == "" {
		t.Errorf("grpc-status-details-bin missing from %v", resp.Header)
	}
	if len(body) != 0 || len(resp.Trailer) != 0 {
		t.Errorf("want no body and no trailers, got body %d bytes, trailers %v", len(body), resp.Trailer)
	}
}

func TestReportDeadline(t *testing.T) {
	srv, c, _ := start(t)
	tests := []struct {
		name    string
		timeout time.Duration // 0 = no deadline
	}{
		{"with deadline", 3 * time.Second},
		{"without deadline", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := WithReportDeadline(context.Background())
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			var trl metadata.MD
			if _, err := c.Unary(ctx, nil, grpc.Trailer(&trl)); err != nil {
				t.Fatalf("unary: %v", err)
			}
			got := trl.Get(TrailerDeadline)
			if len(got) != 1 {
				t.Fatalf("trailer %s = %q", TrailerDeadline, got)
			}
			last, ok := srv.LastDeadline()
			if tc.timeout == 0 {
				if got[0] != "none" || ok {
					t.Errorf("trailer %q, LastDeadline ok=%v; want none/false", got[0], ok)
				}
				return
			}
			ms, err := strconv.Atoi(got[0])
			if err != nil || ms <= 0 || ms > int(tc.timeout.Milliseconds()) {
				t.Errorf("trailer %q, want 0 < ms <= %d", got[0], tc.timeout.Milliseconds())
			}
			if !ok || last <= 0 || last > tc.timeout {
				t.Errorf("LastDeadline = %v, %v", last, ok)
			}
		})
	}
}

func TestCancelSeenByServer(t *testing.T) {
	srv, c, _ := start(t)
	tests := []struct {
		name   string
		method string
		// open starts the call and returns once the server is inside it.
		open func(ctx context.Context) error
	}{
		{"unary", UnaryMethod, func(ctx context.Context) error {
			go c.Unary(WithHold(ctx, time.Minute), nil)
			return nil
		}},
		{"server stream", ServerStreamMethod, func(ctx context.Context) error {
			s, err := c.OpenServerStream(WithReplyInterval(WithReplies(ctx, 100, 1), time.Minute), nil)
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"bidi", BidiStreamMethod, func(ctx context.Context) error {
			s, err := c.OpenBidiStream(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(wrapperspb.Bytes([]byte("x"))); err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"client stream", ClientStreamMethod, func(ctx context.Context) error {
			s, err := c.OpenClientStream(ctx)
			if err != nil {
				return err
			}
			return s.Send(wrapperspb.Bytes([]byte("x")))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, calls := srv.Cancelled(), srv.Calls()
			ctx, cancel := context.WithCancel(testCtx(t))
			if err := tc.open(ctx); err != nil {
				t.Fatalf("open: %v", err)
			}
			waitFor(t, "server to enter the call", func() bool { return srv.Calls() > calls })
			cancel()
			waitFor(t, "server to see the cancel", func() bool { return srv.Cancelled() > before })
			m := srv.CancelledMethods()
			if m[len(m)-1] != tc.method {
				t.Errorf("last cancelled method = %q, want %q", m[len(m)-1], tc.method)
			}
		})
	}
}

func TestDeadlineExceededSeenByServer(t *testing.T) {
	srv, c, _ := start(t)
	ctx, cancel := context.WithTimeout(WithHold(context.Background(), time.Minute), 100*time.Millisecond)
	defer cancel()
	_, err := c.Unary(ctx, nil)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	waitFor(t, "server to see the deadline", func() bool { return srv.DeadlineExceeded() == 1 })
	if srv.Cancelled() != 0 {
		t.Errorf("Cancelled = %d, want 0 (a deadline is not a cancel)", srv.Cancelled())
	}
}
