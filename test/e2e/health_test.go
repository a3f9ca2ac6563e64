package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/l7lb/l7lb/internal/runtime"
)

// healthEnv checks every 2 s with a 1 s timeout; two results in a row
// decide (the ALB's default thresholds), so a change shows within 4 s.
func healthEnv(t *testing.T, extra string) *env {
	t.Helper()
	ann := `    alb.ingress.kubernetes.io/healthcheck-interval-seconds: "2"
    alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "1"`
	if extra != "" {
		ann += "\n" + extra
	}
	return startEnv(t, envOptions{extraAnnotations: ann})
}

// targetStates returns address -> state of the seed's target group.
func targetStates(e *env) map[string]string {
	out := map[string]string{}
	for _, g := range e.rt.Status().Groups {
		for _, tg := range g.Targets {
			out[tg.Address] = tg.State
		}
	}
	return out
}

func waitState(t *testing.T, e *env, addr, want string, within time.Duration) runtime.TargetStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, g := range e.rt.Status().Groups {
			for _, tg := range g.Targets {
				if tg.Address == addr && tg.State == want {
					return tg
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("target %s not %s within %v: %v", addr, want, within, targetStates(e))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// milvusCalls runs HasCollection-like unary calls (raw MilvusService over
// one connection, no SDK retries) and counts the failures.
func milvusCalls(t *testing.T, cc *grpc.ClientConn, n int) (failed int, errs []string) {
	cli := milvuspb.NewMilvusServiceClient(cc)
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.HasCollection(ctx, &milvuspb.HasCollectionRequest{CollectionName: "nope"})
		cancel()
		switch {
		case err != nil:
			failed++
			errs = append(errs, err.Error())
		case resp.GetStatus().GetCode() == 1:
			failed++
			errs = append(errs, "ServiceNotReady reached the client")
		}
	}
	return failed, errs
}

// TestHealthNotServing: a replica whose grpc.health.v1 answers NOT_SERVING
// (with gRPC OK, as Milvus does) turns unhealthy within interval ×
// threshold and gets no more RPCs; it comes back when it serves again.
func TestHealthNotServing(t *testing.T) {
	t.Parallel()
	e := healthEnv(t, "")
	r := e.cluster.Replicas()[1]
	for _, rep := range e.cluster.Replicas() {
		waitState(t, e, rep.Addr(), "healthy", 6*time.Second)
	}
	r.SetServing(false)
	st := waitState(t, e, r.Addr(), "unhealthy", 5*time.Second)
	if !strings.Contains(st.Reason, "NOT_SERVING") {
		t.Errorf("reason %q does not say NOT_SERVING", st.Reason)
	}
	before := r.Served()
	if failed, errs := milvusCalls(t, e.dial(t), 60); failed > 0 {
		t.Fatalf("%d failed: %v", failed, errs)
	}
	if got := r.Served() - before; got != 0 {
		t.Fatalf("unhealthy replica served %d RPCs", got)
	}
	r.SetServing(true)
	waitState(t, e, r.Addr(), "healthy", 6*time.Second)
}

// TestServiceNotReadyRetried: a replica answering ServiceNotReady in its
// replies (as a stopping Milvus proxy does) never shows through: its RPCs
// go to another replica, and passive health takes it out.
func TestServiceNotReadyRetried(t *testing.T) {
	t.Parallel()
	e := healthEnv(t, "")
	for _, rep := range e.cluster.Replicas() {
		waitState(t, e, rep.Addr(), "healthy", 6*time.Second)
	}
	r := e.cluster.Replicas()[0]
	r.SetNotReady(true)
	if failed, errs := milvusCalls(t, e.dial(t), 90); failed > 0 {
		t.Fatalf("%d of 90 failed: %v", failed, errs[:min(3, len(errs))])
	}
	st := waitState(t, e, r.Addr(), "unhealthy", 5*time.Second)
	if !strings.Contains(st.Reason, "ServiceNotReady") {
		t.Errorf("reason %q", st.Reason)
	}
}

// TestKilledReplica: after a replica dies, reads keep succeeding (new
// calls are refused by it and retried elsewhere; a call caught on its
// dying connection is retried under the read retry policy, since l7lb
// cannot know whether the replica processed it), and it turns unhealthy.
func TestKilledReplica(t *testing.T) {
	t.Parallel()
	e := healthEnv(t, "    l7lb.io/retry-policy: idempotent-reads")
	cc := e.dial(t)
	if failed, _ := milvusCalls(t, cc, 9); failed > 0 {
		t.Fatal("warm-up failed")
	}
	r := e.cluster.Replicas()[2]
	r.Kill()
	if failed, errs := milvusCalls(t, cc, 60); failed > 0 {
		t.Fatalf("%d of 60 failed after the kill: %v", failed, errs[:min(3, len(errs))])
	}
	waitState(t, e, r.Addr(), "unhealthy", 5*time.Second)
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	waitState(t, e, r.Addr(), "healthy", 6*time.Second)
}

// TestFailOpen: with every replica NOT_SERVING, l7lb still sends RPCs to
// all of them, as the ALB does, instead of refusing everything.
func TestFailOpen(t *testing.T) {
	t.Parallel()
	e := healthEnv(t, "")
	for _, r := range e.cluster.Replicas() {
		r.SetServing(false)
	}
	for _, r := range e.cluster.Replicas() {
		waitState(t, e, r.Addr(), "unhealthy", 5*time.Second)
	}
	if failed, errs := milvusCalls(t, e.dial(t), 30); failed > 0 {
		t.Fatalf("%d failed while failing open: %v", failed, errs)
	}
	if !e.rt.Group("milvus/milvus-demo:19530").FailingOpen() {
		t.Fatal("group does not say it is failing open")
	}
}

// TestNoDuplicateWrites: Inserts under a replica kill are never applied
// twice (l7lb does not retry a write that may have reached Milvus). Every
// success is stored once; a failed insert may or may not be stored (the
// replica can die between applying it and answering), but only once.
func TestNoDuplicateWrites(t *testing.T) {
	t.Parallel()
	e := healthEnv(t, "")
	cc := e.dial(t)
	cli := milvuspb.NewMilvusServiceClient(cc)
	ctx := ctxT(t, time.Minute)
	if err := createTestCollection(ctx, cli, "dups"); err != nil {
		t.Fatal(err)
	}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := insertRow(ctx, cli, "dups", int64(w*100000+i)); err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond)
	e.cluster.Replicas()[1].Kill()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	rows := e.cluster.Engine().RowCount("default", "dups")
	written := e.cluster.Engine().RowsWritten("default", "dups")
	t.Logf("inserts ok=%d failed=%d rows=%d rows written=%d", ok.Load(), failed.Load(), rows, written)
	if written != rows {
		t.Fatalf("%d rows were written for %d keys: an insert was applied twice", written, rows)
	}
	if int64(rows) < ok.Load() || int64(rows) > ok.Load()+failed.Load() {
		t.Fatalf("rows %d, want between the successful inserts (%d) and all inserts (%d)", rows, ok.Load(), ok.Load()+failed.Load())
	}
}

func createTestCollection(ctx context.Context, cli milvuspb.MilvusServiceClient, name string) error {
	schema, err := proto.Marshal(&schemapb.CollectionSchema{Name: name, Fields: []*schemapb.FieldSchema{
		{FieldID: 100, Name: "id", IsPrimaryKey: true, DataType: schemapb.DataType_Int64},
		{FieldID: 101, Name: "v", DataType: schemapb.DataType_FloatVector, TypeParams: []*commonpb.KeyValuePair{{Key: "dim", Value: "2"}}},
	}})
	if err != nil {
		return err
	}
	st, err := cli.CreateCollection(ctx, &milvuspb.CreateCollectionRequest{CollectionName: name, Schema: schema, ShardsNum: 1})
	if err == nil && st.GetCode() != 0 {
		err = fmt.Errorf("create collection: %s", st.GetReason())
	}
	return err
}

func insertRow(ctx context.Context, cli milvuspb.MilvusServiceClient, coll string, id int64) error {
	resp, err := cli.Insert(ctx, &milvuspb.InsertRequest{CollectionName: coll, NumRows: 1, FieldsData: []*schemapb.FieldData{
		{Type: schemapb.DataType_Int64, FieldName: "id", FieldId: 100, Field: &schemapb.FieldData_Scalars{Scalars: &schemapb.ScalarField{
			Data: &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: []int64{id}}}}}},
		{Type: schemapb.DataType_FloatVector, FieldName: "v", FieldId: 101, Field: &schemapb.FieldData_Vectors{Vectors: &schemapb.VectorField{
			Dim: 2, Data: &schemapb.VectorField_FloatVector{FloatVector: &schemapb.FloatArray{Data: []float32{1, 2}}}}}},
	}})
	if err == nil && resp.GetStatus().GetCode() != 0 {
		err = fmt.Errorf("insert: %s", resp.GetStatus().GetReason())
	}
	return err
}
