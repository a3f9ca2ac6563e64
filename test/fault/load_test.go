package fault

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	grpc_retry "github.com/grpc-ecosystem/go-grpc-middleware/retry"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus/engine"
)

// The load: the official Go SDK, one client (one HTTP/2 connection to
// l7lb) per goroutine. The SDK retries UNAVAILABLE and RESOURCE_EXHAUSTED
// itself up to 6 times with back-off; that would hide exactly the failures
// this suite counts, so every call passes grpc_retry.Disable(): one SDK
// call is one gRPC attempt and every failure l7lb lets through reaches the
// caller. (grpc-go's own transparent retry of streams that never left the
// client stays on, as for every gRPC client.)
const (
	collection = "fault"
	dim        = 8
	batchRows  = 5
	rpcTimeout = 10 * time.Second
)

type opKind int

const (
	opSearch opKind = iota
	opInsert
)

func (k opKind) String() string {
	if k == opSearch {
		return "Search"
	}
	return "Insert"
}

// record is one SDK call.
type record struct {
	op         opKind
	worker     int
	start, end time.Time
	err        error
	tag        string // Insert: the tag of its rows
	rows       int
}

type loadOptions struct {
	searchers, inserters int
}

// loadRun is a running load.
type loadRun struct {
	t       *testing.T
	clients []*milvusclient.Client
	stop    chan struct{}
	wg      sync.WaitGroup
	recs    [][]record
	started time.Time
	sent    atomic.Int64
	failed  atomic.Int64
	base    int // rows inserted by setup
}

func connect(ctx context.Context, addr string, pool *x509.CertPool) (*milvusclient.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return demo.Connect(cctx, addr, serverName, pool)
}

// setupCollection creates the collection (auto-ID primary key, so a
// duplicated Insert shows as extra rows), an index, loads it and inserts
// base rows.
func setupCollection(t *testing.T, addr string, pool *x509.CertPool) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := connect(ctx, addr, pool)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	schema := entity.NewSchema().WithName(collection).
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true).WithIsAutoID(true)).
		WithField(entity.NewField().WithName("tag").WithDataType(entity.FieldTypeVarChar).WithMaxLength(64)).
		WithField(entity.NewField().WithName("vector").WithDataType(entity.FieldTypeFloatVector).WithDim(dim))
	if err := c.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(collection, schema)); err != nil {
		t.Fatalf("create collection: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const base = 50
	tags, vecs := make([]string, base), make([][]float32, base)
	for i := range tags {
		tags[i], vecs[i] = "base", vector(rng)
	}
	if _, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption(collection).
		WithVarcharColumn("tag", tags).WithFloatVectorColumn("vector", dim, vecs)); err != nil {
		t.Fatalf("insert base rows: %v", err)
	}
	task, err := c.CreateIndex(ctx, milvusclient.NewCreateIndexOption(collection, "vector", index.NewFlatIndex(entity.L2)))
	if err != nil {
		t.Fatalf("create index: %v", err)
	}
	if err := task.Await(ctx); err != nil {
		t.Fatalf("index: %v", err)
	}
	lt, err := c.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(collection))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := lt.Await(ctx); err != nil {
		t.Fatalf("load: %v", err)
	}
	return base
}

func vector(rng *rand.Rand) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}

// startLoad connects the clients and starts the goroutines; Stop ends them.
func startLoad(t *testing.T, id, addr string, pool *x509.CertPool, base int, o loadOptions) *loadRun {
	t.Helper()
	n := o.searchers + o.inserters
	l := &loadRun{t: t, stop: make(chan struct{}), recs: make([][]record, n), base: base}
	ctx := context.Background()
	for i := 0; i < n; i++ {
		c, err := connect(ctx, addr, pool)
		if err != nil {
			t.Fatalf("connect client %d: %v", i, err)
		}
		l.clients = append(l.clients, c)
	}
	l.started = time.Now()
	for i := 0; i < n; i++ {
		op := opSearch
		if i >= o.searchers {
			op = opInsert
		}
		l.wg.Add(1)
		go l.worker(id, i, op)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func (l *loadRun) worker(id string, w int, op opKind) {
	defer l.wg.Done()
	c := l.clients[w]
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	for seq := 0; ; seq++ {
		select {
		case <-l.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		r := record{op: op, worker: w, start: time.Now()}
		switch op {
		case opSearch:
			var rs []milvusclient.ResultSet
			rs, r.err = c.Search(ctx, milvusclient.NewSearchOption(collection, 5, []entity.Vector{entity.FloatVector(vector(rng))}).
				WithANNSField("vector"), grpc_retry.Disable())
			if r.err == nil && len(rs) != 1 {
				r.err = fmt.Errorf("search: %d result sets, want 1", len(rs))
			}
		case opInsert:
			r.tag = fmt.Sprintf("%s-w%d-%d", id, w, seq)
			r.rows = batchRows
			tags, vecs := make([]string, batchRows), make([][]float32, batchRows)
			for i := range tags {
				tags[i], vecs[i] = r.tag, vector(rng)
			}
			var res milvusclient.InsertResult
			res, r.err = c.Insert(ctx, milvusclient.NewColumnBasedInsertOption(collection).
				WithVarcharColumn("tag", tags).WithFloatVectorColumn("vector", dim, vecs), grpc_retry.Disable())
			if r.err == nil && res.InsertCount != batchRows {
				r.err = fmt.Errorf("insert: count %d, want %d", res.InsertCount, batchRows)
			}
		}
		r.end = time.Now()
		cancel()
		l.recs[w] = append(l.recs[w], r)
		l.sent.Add(1)
		if r.err != nil {
			l.failed.Add(1)
			time.Sleep(10 * time.Millisecond) // no hot loop while l7lb refuses
		}
	}
}

// Stop ends the load (bounded by the RPC timeout) and closes the clients.
func (l *loadRun) Stop() {
	select {
	case <-l.stop:
		return
	default:
	}
	close(l.stop)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(rpcTimeout + 5*time.Second):
		l.t.Errorf("load goroutines did not stop within %v", rpcTimeout+5*time.Second)
	}
	for _, c := range l.clients {
		c.Close(context.Background()) //nolint:errcheck // end of test
	}
}

// all returns every record in start order.
func (l *loadRun) all() []record {
	var out []record
	for _, rs := range l.recs {
		out = append(out, rs...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// tally counts records.
type tally struct {
	sent, failed         int
	reads, readFails     int
	inserts, insertFails int
	ackedRows            int
	byCode               map[string]int
	samples              []string
}

func count(recs []record, t0 time.Time) tally {
	ty := tally{byCode: map[string]int{}}
	for _, r := range recs {
		ty.sent++
		if r.op == opSearch {
			ty.reads++
		} else {
			ty.inserts++
		}
		if r.err == nil {
			if r.op == opInsert {
				ty.ackedRows += r.rows
			}
			continue
		}
		ty.failed++
		if r.op == opSearch {
			ty.readFails++
		} else {
			ty.insertFails++
		}
		ty.byCode[codeLabel(r.err)]++
		if len(ty.samples) < 6 {
			ty.samples = append(ty.samples, fmt.Sprintf("%s at +%v (took %v): %v", r.op, r.start.Sub(t0).Round(time.Millisecond), r.end.Sub(r.start).Round(time.Millisecond), r.err))
		}
	}
	return ty
}

func (ty tally) String() string {
	return fmt.Sprintf("reads %d/%d failed, inserts %d/%d failed, codes %v", ty.readFails, ty.reads, ty.insertFails, ty.inserts, ty.byCode)
}

func (ty tally) failures() string {
	if len(ty.samples) == 0 {
		return ""
	}
	return "\n    " + strings.Join(ty.samples, "\n    ")
}

// rows compares what the engine holds with what the callers were told.
type rows struct {
	acked          int // base + rows of successful Inserts
	present        int // Engine.RowCount
	appliedUnacked int // rows of Inserts that returned an error yet are present
	// appliedAtCrash: the part of appliedUnacked whose Insert was in flight
	// when a backend was killed: the replica applied it and died before
	// its reply left, which no balancer can know. Abrupt kills only.
	appliedAtCrash int
	overApplied    int // failed Inserts whose rows are present more than once
	lost, dup      int
}

func (r rows) String() string {
	return fmt.Sprintf("rows acked=%d present=%d applied_but_failed=%d (in flight at a kill: %d) lost=%d duplicated=%d",
		r.acked, r.present, r.appliedUnacked, r.appliedAtCrash, r.lost, r.dup+r.overApplied)
}

// exact is the row rule: the row count equals the successful
// inserts, except for Inserts that were in flight on a replica killed
// abruptly (they returned an error to their caller, and the replica may
// have applied them before it died).
func (r rows) exact() bool {
	return r.lost == 0 && r.dup == 0 && r.overApplied == 0 && r.appliedUnacked == r.appliedAtCrash
}

// checkRows counts rows per failed Insert's tag on the engine directly
// (not through l7lb): present - appliedUnacked - acked > 0 means an
// acknowledged Insert was applied twice, < 0 means acknowledged rows are
// missing. kills span the window in which backends were killed abruptly.
func checkRows(t *testing.T, be *backend, base int, recs []record, kills ...time.Time) rows {
	t.Helper()
	out := rows{acked: base, present: be.eng.RowCount("default", collection)}
	srv := be.eng.Server(engine.ServerOptions{})
	for _, r := range recs {
		if r.op != opInsert {
			continue
		}
		if r.err == nil {
			out.acked += r.rows
			continue
		}
		res, err := srv.Query(context.Background(), &milvuspb.QueryRequest{
			CollectionName: collection, Expr: fmt.Sprintf(`tag == "%s"`, r.tag), OutputFields: []string{"count(*)"},
		})
		if err != nil || res.GetStatus().GetCode() != 0 {
			t.Errorf("count rows of tag %s: %v %v", r.tag, err, res.GetStatus())
			continue
		}
		n := 0
		for _, fd := range res.GetFieldsData() {
			if d := fd.GetScalars().GetLongData().GetData(); len(d) == 1 {
				n = int(d[0])
			}
		}
		out.appliedUnacked += n
		if n > r.rows {
			out.overApplied += n - r.rows
		}
		if n > 0 {
			// In flight at some point of the kill window (first to last kill).
			atKill := false
			if len(kills) > 0 {
				lo, hi := kills[0], kills[0]
				for _, k := range kills {
					if k.Before(lo) {
						lo = k
					}
					if k.After(hi) {
						hi = k
					}
				}
				atKill = !r.start.After(hi) && !r.end.Before(lo)
			}
			if atKill {
				out.appliedAtCrash += n
			} else {
				t.Logf("Insert %s failed (%v) yet %d of its rows are present; it was not in flight at a backend kill", r.tag, r.err, n)
			}
		}
	}
	diff := out.present - out.appliedUnacked - out.acked
	if diff > 0 {
		out.dup = diff
	} else {
		out.lost = -diff
	}
	return out
}

// codeLabel names a failure: its gRPC code, or "in-body" for a Milvus
// status error that came with gRPC OK (ServiceNotReady and the like).
func codeLabel(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Code().String()
	}
	return "in-body"
}

// codeOf unwraps an SDK error to its gRPC code.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Code()
	}
	return status.Code(err)
}

// sleepUntil sleeps until t (or not at all).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// waitHealthyAll waits until every replica's target is healthy.
func (e *inproc) waitHealthyAll(t *testing.T) {
	t.Helper()
	for i := 0; i < replicas; i++ {
		if _, ok := e.waitState(i, "healthy", 3*hcInterval*hcHealthy); !ok {
			t.Fatalf("targets not healthy before the fault: %s", e.states())
		}
	}
}
