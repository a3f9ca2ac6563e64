package e2e

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
	"github.com/l7lb/l7lb/internal/observe"
)

// TestTraceParent: a client's W3C traceparent reaches the backend
// unchanged; a request without one (or with a malformed one) gets one
// from l7lb.
func TestTraceParent(t *testing.T) {
	e := startEnv(t, envOptions{})
	cli := echo.NewClient(e.dial(t))
	const given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name, sent string
		keep       bool
	}{
		{"kept", given, true},
		{"added", "", false},
		{"malformed replaced", "00-xyz", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t, 5*time.Second)
			if tc.sent != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", tc.sent)
			}
			var hdr metadata.MD
			if _, err := cli.Unary(ctx, []byte("x"), grpc.Header(&hdr)); err != nil {
				t.Fatal(err)
			}
			seen := hdr.Get(echo.EchoPrefix + "traceparent")
			if len(seen) != 1 || !observe.ValidTraceParent(seen[0]) {
				t.Fatalf("backend saw traceparent %q", seen)
			}
			if tc.keep != (seen[0] == tc.sent) {
				t.Fatalf("sent %q, backend saw %q", tc.sent, seen[0])
			}
		})
	}
}
