package fakemilvus

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// TestReplicaHeader checks that every reply names its replica: in the
// headers when the RPC succeeds, and always in the trailers (so trailers-only
// failures stay trailers-only).
func TestReplicaHeader(t *testing.T) {
	c := startCluster(t, Options{})
	type result struct {
		hdr, trl metadata.MD
		err      error
	}
	tests := []struct {
		name       string
		wantHeader bool
		wantCode   codes.Code
		call       func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error
	}{
		{"echo unary", true, codes.OK, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			_, err := echo.NewClient(cc).Unary(ctx, []byte("x"), opts...)
			return err
		}},
		{"echo server stream", true, codes.OK, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			_, err := echo.NewClient(cc).ServerStream(ctx, 2, 3, opts...)
			return err
		}},
		{"echo stream without replies", true, codes.OK, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			_, err := echo.NewClient(cc).ServerStream(ctx, 0, 3, opts...)
			return err
		}},
		{"echo trailers-only failure", false, codes.Unavailable, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			_, err := echo.NewClient(cc).Unary(echo.WithFailCode(ctx, uint32(codes.Unavailable), ""), nil, opts...)
			return err
		}},
		{"milvus GetVersion", true, codes.OK, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			_, err := milvuspb.NewMilvusServiceClient(cc).GetVersion(ctx, &milvuspb.GetVersionRequest{}, opts...)
			return err
		}},
		{"health check", true, codes.OK, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
			return err
		}},
		{"unknown service", false, codes.Unimplemented, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			return cc.Invoke(ctx, "/no.such.Service/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}, opts...)
		}},
		{"unknown method of a known service", false, codes.Unimplemented, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			return cc.Invoke(ctx, "/milvus.proto.milvus.MilvusService/NoSuchMethod", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}, opts...)
		}},
	}
	for _, r := range c.Replicas() {
		cc := dial(t, r.Addr())
		for _, tc := range tests {
			t.Run(r.Name()+"/"+tc.name, func(t *testing.T) {
				var res result
				res.err = tc.call(testCtx(t), cc, grpc.Header(&res.hdr), grpc.Trailer(&res.trl))
				if got := status.Code(res.err); got != tc.wantCode {
					t.Fatalf("code = %v (%v), want %v", got, res.err, tc.wantCode)
				}
				if got := res.trl.Get(ReplicaHeader); len(got) != 1 || got[0] != r.Name() {
					t.Errorf("trailer %s = %q, want [%s]", ReplicaHeader, got, r.Name())
				}
				got := res.hdr.Get(ReplicaHeader)
				if tc.wantHeader && (len(got) != 1 || got[0] != r.Name()) {
					t.Errorf("header %s = %q, want [%s]", ReplicaHeader, got, r.Name())
				}
				if !tc.wantHeader && len(got) != 0 {
					t.Errorf("header %s = %q on a trailers-only reply", ReplicaHeader, got)
				}
			})
		}
	}
}

func TestServedCountsRPCsButNotHealthChecks(t *testing.T) {
	c := startCluster(t, Options{Replicas: 2})
	r := c.Replicas()[1]
	cc := dial(t, r.Addr())
	ctx := testCtx(t)
	const n = 5
	for i := 0; i < n; i++ {
		if _, err := echo.NewClient(cc).Unary(ctx, nil); err != nil {
			t.Fatalf("unary: %v", err)
		}
		if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("health: %v", err)
		}
	}
	resp, err := http.Post("http://"+r.Addr()+"/anything", "application/json", nil)
	if err != nil {
		t.Fatalf("rest: %v", err)
	}
	resp.Body.Close()
	if got := r.Served(); got != n+1 {
		t.Errorf("Served = %d, want %d", got, n+1)
	}
	if got := r.HealthChecks(); got != n {
		t.Errorf("HealthChecks = %d, want %d", got, n)
	}
	if got := c.Replicas()[0].Served(); got != 0 {
		t.Errorf("other replica Served = %d, want 0", got)
	}
}

func TestNotReadyAnswersInBody(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1})
	r := c.Replicas()[0]
	mc := milvuspb.NewMilvusServiceClient(dial(t, r.Addr()))
	tests := []struct {
		name     string
		notReady bool
		wantCode int32
	}{
		{"ready", false, 0},
		{"not ready", true, 1}, // merr ServiceNotReady
		{"ready again", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.SetNotReady(tc.notReady)
			resp, err := mc.ShowCollections(testCtx(t), &milvuspb.ShowCollectionsRequest{})
			if err != nil {
				t.Fatalf("gRPC error %v, want OK with the status in the body", err)
			}
			if got := resp.GetStatus().GetCode(); got != tc.wantCode {
				t.Errorf("status.code = %d (%q), want %d", got, resp.GetStatus().GetReason(), tc.wantCode)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1})
	r := c.Replicas()[0]
	cc := dial(t, r.Addr())
	tests := []struct {
		name    string
		latency time.Duration
	}{
		{"none", 0},
		{"300ms", 300 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.SetLatency(tc.latency)
			// One call to warm the connection up, then measure.
			_, _ = echo.NewClient(cc).Unary(testCtx(t), nil)
			start := time.Now()
			if _, err := echo.NewClient(cc).Unary(testCtx(t), nil); err != nil {
				t.Fatalf("unary: %v", err)
			}
			took := time.Since(start)
			if took < tc.latency || took > tc.latency+2*time.Second {
				t.Errorf("took %v, want about %v", took, tc.latency)
			}
		})
	}
}

func TestMaxRecvMsgSize(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1, MaxRecvMsgSize: 1024})
	ec := echo.NewClient(dial(t, c.Replicas()[0].Addr()))
	tests := []struct {
		size int
		want codes.Code
	}{
		{512, codes.OK},
		{4096, codes.ResourceExhausted},
	}
	for _, tc := range tests {
		_, err := ec.Unary(testCtx(t), make([]byte, tc.size))
		if got := status.Code(err); got != tc.want {
			t.Errorf("size %d: code %v (%v), want %v", tc.size, got, err, tc.want)
		}
	}
}

// TestEchoThroughReplica runs all four call kinds through a replica's
// interceptors, which wrap the stream.
func TestEchoThroughReplica(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1, Ports: []int{0}})
	r := c.Replicas()[0]
	r.SetLatency(10 * time.Millisecond)
	ec := echo.NewClient(dial(t, r.Addr()))
	ctx := testCtx(t)
	if b, err := ec.Unary(ctx, []byte("u")); err != nil || string(b) != "u" {
		t.Errorf("unary = %q, %v", b, err)
	}
	if b, err := ec.ClientStream(ctx, [][]byte{[]byte("a"), []byte("b")}); err != nil || string(b) != "ab" {
		t.Errorf("client stream = %q, %v", b, err)
	}
	if bs, err := ec.ServerStream(ctx, 3, 2); err != nil || len(bs) != 3 {
		t.Errorf("server stream = %q, %v", bs, err)
	}
	if bs, err := ec.PingPong(ctx, [][]byte{[]byte("p"), []byte("q")}); err != nil || len(bs) != 2 || string(bs[1]) != "q" {
		t.Errorf("ping-pong = %q, %v", bs, err)
	}
	// A cancel goes through the interceptor to the echo server of that replica.
	cctx, cancel := context.WithCancel(ctx)
	calls := r.Echo().Calls()
	errc := make(chan error, 1)
	go func() { _, err := ec.Unary(echo.WithHold(cctx, time.Minute), nil); errc <- err }()
	waitFor(t, "call to reach the server", func() bool { return r.Echo().Calls() > calls })
	cancel()
	waitFor(t, "server to see the cancel", func() bool { return r.Echo().Cancelled() == 1 })
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Errorf("client err = %v, want Canceled", err)
	}
}

func TestStartValidation(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"negative replicas", Options{Replicas: -1}, "replicas"},
		{"too many ports", Options{Replicas: 1, Ports: []int{0, 0}}, "ports"},
		{"bad host", Options{Replicas: 1, Host: "no such host.invalid"}, "listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Start(tc.opts)
			if err == nil {
				c.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestNamedClusterReplicaHeader: with Options.Name, replies name the
// cluster too, so two clusters behind one balancer can be told apart.
func TestNamedClusterReplicaHeader(t *testing.T) {
	c := startCluster(t, Options{Replicas: 2, Name: "green"})
	for i, r := range c.Replicas() {
		want := fmt.Sprintf("green/replica-%d", i)
		if r.Name() != want {
			t.Errorf("Name() = %q, want %q", r.Name(), want)
		}
		var hdr metadata.MD
		cc := dial(t, r.Addr())
		if _, err := milvuspb.NewMilvusServiceClient(cc).GetVersion(testCtx(t), &milvuspb.GetVersionRequest{}, grpc.Header(&hdr)); err != nil {
			t.Fatalf("GetVersion: %v", err)
		}
		if got := hdr.Get(ReplicaHeader); len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q, want [%s]", ReplicaHeader, got, want)
		}
	}
}
