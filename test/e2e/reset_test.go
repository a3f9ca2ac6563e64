package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// TestBackendResetReachesClient: a backend that resets a stream with an
// HTTP/2 error code makes the client's RPC fail with the gRPC code the
// gRPC specification assigns to that reset, as if the client had talked to
// the backend directly.
func TestBackendResetReachesClient(t *testing.T) {
	tests := []struct {
		reset http2.ErrCode
		want  codes.Code
	}{
		{http2.ErrCodeRefusedStream, codes.Unavailable},
		{http2.ErrCodeCancel, codes.Canceled},
		{http2.ErrCodeEnhanceYourCalm, codes.ResourceExhausted},
		{http2.ErrCodeInternal, codes.Internal},
		{http2.ErrCodeInadequateSecurity, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.reset.String(), func(t *testing.T) {
			b := startResetBackend(t, tc.reset)
			e := startEnv(t, envOptions{cluster: fakeOpts(1), endpoints: []config.Endpoint{b.endpoint()}})
			_, err := echo.NewClient(e.dial(t)).Unary(ctxT(t, 5*time.Second), []byte("x"))
			if got := status.Code(err); got != tc.want {
				t.Fatalf("backend reset %v: client got %v (%v), want %v", tc.reset, got, err, tc.want)
			}
		})
	}
}

// TestDeadlineEnforcedByBalancer sends grpc-timeout from a client that does
// not enforce it itself: l7lb ends the RPC with DEADLINE_EXCEEDED when the
// backend takes longer.
func TestDeadlineEnforcedByBalancer(t *testing.T) {
	e := startEnv(t, envOptions{})
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), ServerName: serverName}}
	defer tr.CloseIdleConnections()
	// One empty gRPC message (flag 0, length 0) as the request.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://"+e.addr+echo.UnaryMethod, strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Host = serverName
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "300m")
	req.Header.Set("X-Hold-Ms", "5000")
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	st := resp.Trailer.Get("Grpc-Status")
	if st == "" {
		st = resp.Header.Get("Grpc-Status")
	}
	if st != "4" {
		t.Fatalf("grpc-status %q (headers %v, trailers %v), want 4 (DEADLINE_EXCEEDED)", st, resp.Header, resp.Trailer)
	}
	if took > 3*time.Second {
		t.Fatalf("took %v for a 300 ms deadline", took)
	}
}
