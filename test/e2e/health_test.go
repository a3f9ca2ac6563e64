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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/fakemilvus/engine"
	"github.com/l7lb/l7lb/internal/runtime"
)

// healthEnv checks every 2 s with a 1 s timeout; two results in a row
// decide (the ALB's default thresholds), so a change shows within 4 s.
func healthEnv(t *testing.T, extra string) *env {
	t.Helper()
	ann := healthAnnotations
	if extra != "" {
		ann += "\n" + extra
	}
	return startEnv(t, envOptions{extraAnnotations: ann})
}

const healthAnnotations = `    alb.ingress.kubernetes.io/healthcheck-interval-seconds: "2"
    alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "1"`

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

// TestNoDuplicateWrites: inserts caught in flight on a replica when it
// dies are never applied twice (l7lb does not retry a write that may have
// reached Milvus) and fail with a clean UNAVAILABLE, neither hanging nor
// answering garbage; inserts sent after the kill succeed on the other
// replicas.
//
// The kill is timed on an event, not a sleep: on the victim replica every
// Insert is applied and then held, its reply unsent, until the replica
// dies. The test kills it only once every worker has an insert held there
// and l7lb counts those RPCs in flight to it. So each held insert is
// stored but unanswered: a retry elsewhere would store its row a second
// time (RowsWritten above RowCount) and answer the client OK.
func TestNoDuplicateWrites(t *testing.T) {
	t.Parallel()
	const workers, perWorker = 4, 40
	gate := newInsertGate(t)
	e := startEnv(t, envOptions{extraAnnotations: healthAnnotations, cluster: gate.options()})
	for _, rep := range e.cluster.Replicas() {
		waitState(t, e, rep.Addr(), "healthy", 6*time.Second)
	}
	cli := milvuspb.NewMilvusServiceClient(e.dial(t))
	if err := createTestCollection(ctxT(t, 10*time.Second), cli, "dups"); err != nil {
		t.Fatal(err)
	}
	victim := e.cluster.Replicas()[1]
	gate.holdOn(victim.Addr())

	var mu sync.Mutex
	results := map[int64]error{} // every insert's outcome, by primary key
	var okAfterKill atomic.Int64
	var killedAt atomic.Int64 // UnixNano; 0 before the kill
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				id := int64(w*100000 + i)
				sent := time.Now().UnixNano()
				// The deadline is far above an insert's time: a client
				// left hanging by l7lb fails with DEADLINE_EXCEEDED.
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				err := insertRow(ctx, cli, "dups", id)
				cancel()
				mu.Lock()
				results[id] = err
				mu.Unlock()
				if k := killedAt.Load(); err == nil && k != 0 && sent > k {
					okAfterKill.Add(1)
				}
			}
		}(w)
	}
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()

	// Every worker ends up with an insert held on the victim: round robin
	// sends each worker still free there within a few calls.
	held := gate.waitHeld(t, workers, 10*time.Second)
	inFlight := waitInFlight(t, e, victim.Addr(), int64(len(held)), 5*time.Second)
	t.Logf("killing %s with %d inserts held there; l7lb counts %d RPCs in flight to it", victim.Addr(), len(held), inFlight)
	killedAt.Store(time.Now().UnixNano())
	victim.Kill()

	select {
	case <-workersDone:
	case <-time.After(90 * time.Second):
		t.Fatal("inserts still running 90 s after the kill")
	}
	if again := gate.heldKeys(); len(again) != len(held) {
		t.Fatalf("%d inserts held on the victim at the kill, %d by the end", len(held), len(again))
	}

	var ok, failed int64
	for id, err := range results {
		if err == nil {
			ok++
			continue
		}
		failed++
		// Clean: the status l7lb makes for a target that went away. A hang
		// ends in DEADLINE_EXCEEDED, a corrupted reply in INTERNAL or
		// UNKNOWN (an error that is not a gRPC status maps to UNKNOWN too).
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("insert %d failed with %v (%v), want UNAVAILABLE", id, code, err)
		}
	}
	for _, id := range held {
		err, done := results[id]
		switch {
		case !done:
			t.Errorf("insert %d, in flight on the killed replica, never returned", id)
		case err == nil:
			t.Errorf("insert %d, in flight on the killed replica (which applied it), succeeded: it was sent again", id)
		}
	}
	rows := e.cluster.Engine().RowCount("default", "dups")
	written := e.cluster.Engine().RowsWritten("default", "dups")
	t.Logf("inserts ok=%d (%d sent after the kill) failed=%d held at the kill=%d; rows=%d rows written=%d",
		ok, okAfterKill.Load(), failed, len(held), rows, written)
	if ok+failed != workers*perWorker {
		t.Fatalf("%d inserts returned, want %d", ok+failed, workers*perWorker)
	}
	if written != rows {
		t.Fatalf("%d rows were written for %d keys: an insert was applied twice", written, rows)
	}
	// The held inserts were applied and failed; any other failed insert
	// may or may not have reached a replica before it died.
	if lo, hi := ok+int64(len(held)), ok+failed; int64(rows) < lo || int64(rows) > hi {
		t.Fatalf("rows %d, want between the successful and held inserts (%d) and all inserts (%d)", rows, lo, hi)
	}
	if okAfterKill.Load() == 0 {
		t.Fatal("no insert sent after the kill succeeded")
	}
}

// insertGate wraps every replica's MilvusService. On the replica it is
// told to hold on, an Insert is applied and then held: its reply waits
// until the RPC ends (the replica dies, or the client gives up), so the
// test knows which inserts are in flight there.
type insertGate struct {
	victim  atomic.Pointer[string]
	release chan struct{} // closed when the test ends: nothing stays held

	mu      sync.Mutex
	held    []int64       // primary keys of the held inserts
	arrived chan struct{} // pulsed on each new held insert
}

func newInsertGate(t *testing.T) *insertGate {
	g := &insertGate{release: make(chan struct{}), arrived: make(chan struct{}, 1)}
	t.Cleanup(func() { close(g.release) })
	return g
}

// options is a cluster whose replicas serve the engine through the gate.
func (g *insertGate) options() fakemilvus.Options {
	eng := engine.New()
	return fakemilvus.Options{Engine: eng, MilvusServer: func(notReady func() bool) milvuspb.MilvusServiceServer {
		return gatedMilvus{MilvusServiceServer: eng.Server(engine.ServerOptions{NotReady: notReady}), g: g}
	}}
}

// holdOn starts holding the inserts that reach the replica at addr.
func (g *insertGate) holdOn(addr string) { g.victim.Store(&addr) }

func (g *insertGate) heldKeys() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int64(nil), g.held...)
}

// waitHeld waits until n inserts are held and returns their keys.
func (g *insertGate) waitHeld(t *testing.T, n int, within time.Duration) []int64 {
	t.Helper()
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	for {
		if keys := g.heldKeys(); len(keys) >= n {
			return keys
		}
		select {
		case <-g.arrived:
		case <-timeout.C:
			t.Fatalf("%d inserts held on the victim after %v, want %d", len(g.heldKeys()), within, n)
		}
	}
}

type gatedMilvus struct {
	milvuspb.MilvusServiceServer
	g *insertGate
}

func (s gatedMilvus) Insert(ctx context.Context, req *milvuspb.InsertRequest) (*milvuspb.MutationResult, error) {
	resp, err := s.MilvusServiceServer.Insert(ctx, req)
	v := s.g.victim.Load()
	p, ok := peer.FromContext(ctx)
	if err != nil || resp.GetStatus().GetCode() != 0 || v == nil || !ok || p.LocalAddr == nil || p.LocalAddr.String() != *v {
		return resp, err
	}
	s.g.mu.Lock()
	for _, f := range req.GetFieldsData() {
		if f.GetFieldName() == "id" {
			s.g.held = append(s.g.held, f.GetScalars().GetLongData().GetData()...)
		}
	}
	s.g.mu.Unlock()
	select {
	case s.g.arrived <- struct{}{}:
	default:
	}
	select {
	case <-ctx.Done():
	case <-s.g.release:
	}
	return resp, err
}

// waitInFlight waits until l7lb counts at least n requests in flight to
// the target at addr and returns its count.
func waitInFlight(t *testing.T, e *env, addr string, n int64, within time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var got int64
		for _, g := range e.rt.Status().Groups {
			for _, tg := range g.Targets {
				if tg.Address == addr {
					got = tg.InFlight
				}
			}
		}
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("l7lb counts %d requests in flight to %s after %v, want at least %d", got, addr, within, n)
		}
		time.Sleep(5 * time.Millisecond)
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
