package fakemilvus

import (
	"errors"
	"io"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestHealth: NOT_SERVING is an answer with gRPC OK, for the overall and the
// MilvusService name alike (Milvus ignores the name), and Watch sends once.
func TestHealth(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1})
	r := c.Replicas()[0]
	hc := healthpb.NewHealthClient(dial(t, r.Addr()))
	services := []string{"", milvuspb.MilvusService_ServiceDesc.ServiceName}
	tests := []struct {
		name    string
		serving bool
		want    healthpb.HealthCheckResponse_ServingStatus
	}{
		{"serving", true, healthpb.HealthCheckResponse_SERVING},
		{"not serving", false, healthpb.HealthCheckResponse_NOT_SERVING},
		{"serving again", true, healthpb.HealthCheckResponse_SERVING},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.SetServing(tc.serving)
			for _, svc := range services {
				resp, err := hc.Check(testCtx(t), &healthpb.HealthCheckRequest{Service: svc})
				if err != nil {
					t.Fatalf("Check(%q): gRPC error %v, want OK", svc, err)
				}
				if resp.GetStatus() != tc.want {
					t.Errorf("Check(%q) = %v, want %v", svc, resp.GetStatus(), tc.want)
				}
			}
			w, err := hc.Watch(testCtx(t), &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			resp, err := w.Recv()
			if err != nil || resp.GetStatus() != tc.want {
				t.Errorf("Watch first = %v, %v; want %v", resp.GetStatus(), err, tc.want)
			}
			if _, err := w.Recv(); !errors.Is(err, io.EOF) {
				t.Errorf("Watch second Recv = %v, want EOF (Milvus sends once)", err)
			}
		})
	}
}
