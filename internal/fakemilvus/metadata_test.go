package fakemilvus

import (
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// TestLastMetadata: a replica keeps the incoming metadata of the last RPC
// it served, as sent, and a health check does not replace it.
func TestLastMetadata(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1})
	r := c.Replicas()[0]
	if md := r.LastMetadata(); md != nil {
		t.Fatalf("LastMetadata before any RPC = %v, want nil", md)
	}
	cc := dial(t, r.Addr())
	mc := milvuspb.NewMilvusServiceClient(cc)
	for _, v := range []string{"first", "second"} {
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-amzn-mtls-clientcert-subject", "CN="+v)
		if _, err := mc.GetVersion(ctx, &milvuspb.GetVersionRequest{}); err != nil {
			t.Fatalf("GetVersion: %v", err)
		}
		if got := r.LastMetadata().Get("x-amzn-mtls-clientcert-subject"); len(got) != 1 || got[0] != "CN="+v {
			t.Fatalf("after RPC %q: x-amzn-mtls-clientcert-subject = %q, want [CN=%s]", v, got, v)
		}
	}
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-amzn-mtls-clientcert-subject", "CN=health")
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	md := r.LastMetadata()
	if got := md.Get("x-amzn-mtls-clientcert-subject"); len(got) != 1 || got[0] != "CN=second" {
		t.Fatalf("after a health check: %q, want the last RPC's [CN=second]", got)
	}
	md.Set("x-amzn-mtls-clientcert-subject", "changed")
	if got := r.LastMetadata().Get("x-amzn-mtls-clientcert-subject"); got[0] != "CN=second" {
		t.Fatalf("LastMetadata is not a copy: the caller's change shows (%q)", got)
	}
}
