package fakemilvus

import (
	"context"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthServer mirrors the Milvus proxy's grpc.health.v1 implementation:
// Check ignores the service name and answers NOT_SERVING with gRPC OK, and
// Watch sends one status and returns instead of streaming updates.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	r *Replica
}

func (h *healthServer) status() healthpb.HealthCheckResponse_ServingStatus {
	if h.r.Serving() {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

func (h *healthServer) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return &healthpb.HealthCheckResponse{Status: h.status()}, nil
}

func (h *healthServer) Watch(_ *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	return s.Send(&healthpb.HealthCheckResponse{Status: h.status()})
}

func (h *healthServer) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	st := &healthpb.HealthCheckResponse{Status: h.status()}
	return &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{
		"": st,
		milvuspb.MilvusService_ServiceDesc.ServiceName: st,
	}}, nil
}
