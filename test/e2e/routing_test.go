package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	grpc_retry "github.com/grpc-ecosystem/go-grpc-middleware/retry"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/fakemilvus"
)

// search is one top-3 search of collection name.
func search(ctx context.Context, c *milvusclient.Client, name string) error {
	_, err := c.Search(ctx, milvusclient.NewSearchOption(name, 3, []entity.Vector{entity.FloatVector{1, 1, 2, 3}}).WithANNSField("vector"))
	return err
}

// mixedCall makes the i-th call of a mix of SDK methods that name
// collection name, and (every seventh) ListCollections, which names none.
func mixedCall(ctx context.Context, c *milvusclient.Client, name string, i int) (string, error) {
	switch i % 7 {
	case 0:
		return "Search", search(ctx, c, name)
	case 1:
		_, err := c.Query(ctx, milvusclient.NewQueryOption(name).WithFilter("id in [1, 2]").WithOutputFields("id"))
		return "Query", err
	case 2:
		ids, vecs := rowsOf(1000+i, 1)
		_, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption(name).WithInt64Column("id", ids).WithFloatVectorColumn("vector", testDim, vecs))
		return "Insert", err
	case 3:
		_, err := c.DescribeCollection(ctx, milvusclient.NewDescribeCollectionOption(name))
		return "DescribeCollection", err
	case 4:
		ok, err := c.HasCollection(ctx, milvusclient.NewHasCollectionOption(name))
		if err == nil && !ok {
			err = fmt.Errorf("HasCollection(%s) = false", name)
		}
		return "HasCollection", err
	case 5:
		_, err := c.GetLoadState(ctx, milvusclient.NewGetLoadStateOption(name))
		return "GetLoadState", err
	default:
		_, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption())
		return "ListCollections", err
	}
}

// countBy counts the RPCs of method (all methods if "") per cluster and
// the failed ones.
func countBy(rpcs []rpc, method string) (byCluster map[string]int, failed int) {
	byCluster = map[string]int{}
	for _, r := range rpcs {
		if method != "" && r.method != method {
			continue
		}
		if r.err != nil {
			failed++
			continue
		}
		byCluster[r.cluster]++
	}
	return byCluster, failed
}

// TestWeightedForward80to20 sends 4000 Go SDK searches through an
// 80/20 weighted forward between two clusters and checks the split. Each
// RPC is an independent draw, so cluster one's share is binomial with
// n = 4000, p = 0.8: its standard deviation is 0.63 %, and ±3 % is more
// than 4.7 standard deviations (a false failure about once in a million
// runs).
func TestWeightedForward80to20(t *testing.T) {
	doc := routingIngress(weightedAction("split", 80, 20), pathTo("/", "split"))
	e := startTwoClusters(t, doc)
	createLoaded(t, e.One, "", "books", 10)
	createLoaded(t, e.Two, "", "books", 10)
	var log rpcLog
	c := e.sdkClient(t, "", &log)
	ctx := ctxT(t, 2*time.Minute)

	const n, workers = 4000, 4
	before1, before2, base := served(e.One), served(e.Two), log.len()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				if err := search(ctx, c, "books"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("search: %v", err)
	}
	by, failed := countBy(log.snapshot(), "Search")
	one, two := by[clusterOne], by[clusterTwo]
	share := float64(one) / float64(one+two)
	t.Logf("80/20 weighted forward, %d Go SDK searches: cluster one %d (%.2f%%), cluster two %d (%.2f%%), failed %d",
		n, one, 100*share, two, 100-100*share, failed)
	if failed != 0 || one+two != n || len(by) != 2 {
		t.Fatalf("searches by cluster %v, failed %d; want %d answered by clusters one and two", by, failed, n)
	}
	// The clusters' own counters agree with the trailers (of every RPC:
	// the SDK adds a DescribeCollection of its own before its first
	// search of a collection).
	all, _ := countBy(log.snapshot()[base:], "")
	if d1, d2 := served(e.One)-before1, served(e.Two)-before2; d1 != int64(all[clusterOne]) || d2 != int64(all[clusterTwo]) {
		t.Errorf("clusters counted %d and %d RPCs, trailers say %d and %d", d1, d2, all[clusterOne], all[clusterTwo])
	}
	if math.Abs(share-0.8) > 0.03 {
		t.Errorf("cluster one served %.2f%% of %d searches, want 80%% ± 3%%", 100*share, n)
	}
}

// TestWeightChangeUnderLoad moves traffic from cluster one to cluster two
// (100/0 → 50/50 → 0/100) by editing the actions annotation and reloading
// while Go SDK clients search without pause. No RPC may fail, and every
// RPC that starts after a reload returned (and ends before the next one)
// follows the new weights: none on cluster one after 0/100, none on
// cluster two before 50/50.
func TestWeightChangeUnderLoad(t *testing.T) {
	docFor := func(one, two int) string {
		return routingIngress(weightedAction("blue-green", one, two), pathTo("/", "blue-green"))
	}
	e := startTwoClusters(t, docFor(100, 0))
	createLoaded(t, e.One, "", "books", 10)
	createLoaded(t, e.Two, "", "books", 10)
	var log rpcLog
	const clients = 4
	cs := make([]*milvusclient.Client, clients)
	for i := range cs {
		cs[i] = e.sdkClient(t, "", &log)
	}
	ctx := ctxT(t, 2*time.Minute)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	firstErr := make(chan error, 1)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1_000_000; i++ { // bounded; stop ends it long before
				select {
				case <-stop:
					return
				default:
				}
				if err := search(ctx, c, "books"); err != nil {
					failures.Add(1)
					select {
					case firstErr <- err:
					default:
					}
				}
			}
		}()
	}
	// waitRPCs waits (bounded by ctx) until n more RPCs are logged.
	waitRPCs := func(n int) {
		t.Helper()
		target := log.len() + n
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for log.len() < target {
			select {
			case <-ctx.Done():
				t.Fatalf("only %d of %d RPCs within the time limit", log.len(), target)
			case <-tick.C:
			}
		}
	}
	waitRPCs(500)
	at50 := time.Now()
	e.Reload(t, docFor(50, 50))
	after50 := time.Now()
	waitRPCs(1500)
	at0 := time.Now()
	e.Reload(t, docFor(0, 100))
	after0 := time.Now()
	waitRPCs(500)
	close(stop)
	wg.Wait()

	rpcs := log.snapshot()
	// An RPC follows a table for sure when it ended before the next
	// reload began (it was routed before) and started after the reload
	// that applied the table returned (it was routed after); the others
	// crossed a reload, and either table is right for them.
	type phase struct {
		name     string
		from, to time.Time
		by       map[string]int
	}
	phases := []*phase{
		{name: "100/0", to: at50, by: map[string]int{}},
		{name: "50/50", from: after50, to: at0, by: map[string]int{}},
		{name: "0/100", from: after0, to: time.Now().Add(time.Hour), by: map[string]int{}},
	}
	crossed := 0
	for _, r := range rpcs {
		if r.method != "Search" {
			continue
		}
		matched := false
		for _, p := range phases {
			if !r.start.Before(p.from) && r.end.Before(p.to) {
				p.by[r.cluster]++
				matched = true
			}
		}
		if !matched {
			crossed++
		}
	}
	t.Logf("weight change under load, %d Go SDK searches on %d clients: failed %d; crossed a reload %d", len(rpcs), clients, failures.Load(), crossed)
	for _, p := range phases {
		t.Logf("  %-6s cluster one %d, cluster two %d", p.name, p.by[clusterOne], p.by[clusterTwo])
	}
	if failures.Load() != 0 {
		t.Errorf("%d RPCs failed while the weights changed; first: %v", failures.Load(), <-firstErr)
	}
	if p := phases[0]; p.by[clusterTwo] != 0 || p.by[clusterOne] == 0 {
		t.Errorf("100/0: %v, want cluster one only", p.by)
	}
	if p := phases[1]; p.by[clusterOne] == 0 || p.by[clusterTwo] == 0 {
		t.Errorf("50/50: %v, want both clusters", p.by)
	} else if share := float64(p.by[clusterOne]) / float64(p.by[clusterOne]+p.by[clusterTwo]); math.Abs(share-0.5) > 0.1 {
		// ≥ 1500 draws: the standard deviation is ≤ 1.3 %, so ±10 % is more than 7 of them.
		t.Errorf("50/50: cluster one served %.1f%% (%v), want 50%% ± 10%%", 100*share, p.by)
	}
	if p := phases[2]; p.by[clusterOne] != 0 || p.by[clusterTwo] == 0 {
		t.Errorf("0/100: %v after the reload returned, want cluster two only", p.by)
	}
	for _, p := range phases {
		if len(p.by) > 2 || p.by[""] != 0 {
			t.Errorf("%s: RPCs answered by no cluster: %v", p.name, p.by)
		}
	}
}

// TestDBNameRouting routes the Milvus database "analytics" to cluster two
// with an http-header condition on dbname, the gRPC metadata the Go SDK
// sends for its database (ClientConfig.DBName, UseDatabase), and
// everything else to cluster one. Database analytics exists only on
// cluster two and collection books of the default database only on
// cluster one, so a misrouted RPC would also fail; the trailers say which
// cluster answered each one.
func TestDBNameRouting(t *testing.T) {
	doc := routingIngress(`    alb.ingress.kubernetes.io/conditions.milvus-two: >
      [{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"dbname","values":["analytics"]}}]`,
		pathTo("/", "milvus-two"), pathTo("/", "milvus-demo"))
	e := startTwoClusters(t, doc)
	createLoaded(t, e.One, "", "books", 10)
	createLoaded(t, e.Two, "analytics", "events", 10)
	var defLog, anaLog, switchLog rpcLog
	def := e.sdkClient(t, "", &defLog)
	ana := e.sdkClient(t, "analytics", &anaLog)
	ctx := ctxT(t, 2*time.Minute)

	const n = 700 // 100 of each of the seven methods per client
	for i := 0; i < n; i++ {
		if m, err := mixedCall(ctx, def, "books", i); err != nil {
			t.Fatalf("default database, %s (call %d): %v", m, i, err)
		}
		if m, err := mixedCall(ctx, ana, "events", i); err != nil {
			t.Fatalf("database analytics, %s (call %d): %v", m, i, err)
		}
	}
	// UseDatabase switches a connected client's dbname header.
	sw := e.sdkClient(t, "", &switchLog)
	if err := sw.UseDatabase(ctx, milvusclient.NewUseDatabaseOption("analytics")); err != nil {
		t.Fatalf("UseDatabase(analytics): %v", err)
	}
	for i := 0; i < 70; i++ {
		if m, err := mixedCall(ctx, sw, "events", i); err != nil {
			t.Fatalf("after UseDatabase(analytics), %s (call %d): %v", m, i, err)
		}
	}
	check := func(name string, log *rpcLog, want string, from int) {
		t.Helper()
		rpcs := log.snapshot()[from:]
		by, failed := countBy(rpcs, "")
		methods := map[string]bool{}
		for _, r := range rpcs {
			methods[r.method] = true
		}
		wrong := len(rpcs) - failed - by[want]
		t.Logf("dbname routing, %s: %d RPCs (%d methods) -> cluster %s %d, wrong cluster %d, failed %d",
			name, len(rpcs), len(methods), want, by[want], wrong, failed)
		if wrong != 0 || failed != 0 || by[want] < n/10 {
			t.Errorf("%s: RPCs by cluster %v, failed %d; want all on cluster %s", name, by, failed, want)
		}
	}
	check("default database", &defLog, clusterOne, 0)
	check("database analytics (ClientConfig.DBName)", &anaLog, clusterTwo, 0)
	// The client's Connect before UseDatabase carries no dbname: skip it.
	check("database analytics (UseDatabase)", &switchLog, clusterTwo, 1)
}

// TestCollectionRouting routes collection "moved" to cluster two with
// l7lb's collection condition and the rest to cluster one, through Go
// SDK calls that carry collection_name at different field numbers; calls
// that name no collection (ListCollections, GetServerVersion) and
// streaming RPCs (not MilvusService: never held) go to cluster one.
func TestCollectionRouting(t *testing.T) {
	doc := routingIngress(`    l7lb.io/conditions.milvus-two: >
      [{"field":"collection","collectionConfig":{"values":["moved"]}}]`,
		pathTo("/", "milvus-two"), pathTo("/", "milvus-demo"))
	e := startTwoClusters(t, doc)
	createLoaded(t, e.One, "", "books", 10)
	createLoaded(t, e.Two, "", "moved", 10)
	var log rpcLog
	c := e.sdkClient(t, "", &log)
	ctx := ctxT(t, 2*time.Minute)

	// LoadCollection (and its Await's polling) names the collection
	// too; once each, counted with the rest.
	base := log.len()
	for _, name := range []string{"books", "moved"} {
		lt, err := c.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(name))
		if err == nil {
			err = lt.Await(ctx)
		}
		if err != nil {
			t.Fatalf("LoadCollection(%s): %v", name, err)
		}
	}
	const n = 700
	for i := 0; i < n; i++ {
		for _, name := range []string{"books", "moved"} {
			if m, err := mixedCall(ctx, c, name, i); err != nil {
				t.Fatalf("%s %s (call %d): %v", m, name, i, err)
			}
		}
	}
	if _, err := c.GetServerVersion(ctx, milvusclient.NewGetServerVersionOption()); err != nil {
		t.Fatalf("GetServerVersion: %v", err)
	}
	rpcs := log.snapshot()[base:]
	by := map[string]map[string]int{} // collection named -> cluster -> RPCs
	wrong, failed := 0, 0
	for _, r := range rpcs {
		if by[r.collection] == nil {
			by[r.collection] = map[string]int{}
		}
		by[r.collection][r.cluster]++
		want := clusterOne
		if r.collection == "moved" {
			want = clusterTwo
		}
		switch {
		case r.err != nil:
			failed++
		case r.cluster != want:
			wrong++
		}
	}
	t.Logf("collection routing, %d Go SDK RPCs: naming \"moved\" %v, naming \"books\" %v, naming none %v; wrong cluster %d, failed %d",
		len(rpcs), by["moved"], by["books"], by[""], wrong, failed)
	if wrong != 0 || failed != 0 {
		t.Errorf("%d RPCs on the wrong cluster, %d failed", wrong, failed)
	}
	// Six in seven calls of the mix name the collection, one in seven
	// (ListCollections) none.
	if by["moved"][clusterTwo] < 6*n/7 || by["books"][clusterOne] < 6*n/7 || by[""][clusterOne] < n/7 {
		t.Errorf("too few RPCs counted: %v", by)
	}

	// Large inserts (160 000 rows, about 3.8 MiB: many DATA frames): the
	// held request's first frame names the collection, the rest follows.
	const bigRows = 160_000
	bigIDs, big := rowsOf(1_000_000, bigRows)
	for _, name := range []string{"books", "moved"} {
		res, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption(name).WithInt64Column("id", bigIDs).WithFloatVectorColumn("vector", testDim, big))
		if err != nil {
			t.Fatalf("large insert into %s: %v", name, err)
		}
		if res.InsertCount != bigRows {
			t.Errorf("large insert into %s: %d rows, want %d", name, res.InsertCount, bigRows)
		}
	}
	if got := e.One.Engine().RowsWritten("default", "books"); got < bigRows {
		t.Errorf("cluster one has %d rows written in books, want the large insert's", got)
	}
	if got := e.Two.Engine().RowsWritten("default", "moved"); got < bigRows {
		t.Errorf("cluster two has %d rows written in moved, want the large insert's", got)
	}

	// Streams of another service (the clusters' echo service) name no
	// collection: routed at once to the default rule, never held.
	ec := e.dialEcho(t)
	payloads := [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64)}
	streams := []struct {
		name string
		call func(trl *metadata.MD) error
	}{
		{"server stream", func(trl *metadata.MD) error { _, err := ec.ServerStream(ctx, 3, 64, grpc.Trailer(trl)); return err }},
		{"client stream", func(trl *metadata.MD) error { _, err := ec.ClientStream(ctx, payloads, grpc.Trailer(trl)); return err }},
		{"bidi stream", func(trl *metadata.MD) error { _, err := ec.PingPong(ctx, payloads, grpc.Trailer(trl)); return err }},
	}
	for _, s := range streams {
		var trl metadata.MD
		if err := s.call(&trl); err != nil {
			t.Errorf("%s through a table with a collection rule: %v", s.name, err)
			continue
		}
		if v := trl.Get(fakemilvus.ReplicaHeader); len(v) != 1 || !strings.HasPrefix(v[0], clusterOne+"/") {
			t.Errorf("%s answered by %q, want cluster one", s.name, v)
		}
	}
}

// TestFixedResponseGRPC: a fixed-response action answers a gRPC call with
// the status mapped from its HTTP status code (503 → UNAVAILABLE) and the
// message body as the status message; other methods still reach Milvus.
func TestFixedResponseGRPC(t *testing.T) {
	doc := routingIngress(`    alb.ingress.kubernetes.io/actions.maintenance: >
      {"type":"fixed-response","fixedResponseConfig":{"contentType":"text/plain","statusCode":"503","messageBody":"down for maintenance"}}`,
		pathTo("/milvus.proto.milvus.MilvusService/DropCollection", "maintenance"), pathTo("/", "milvus-demo"))
	e := startTwoClusters(t, doc)
	createLoaded(t, e.One, "", "books", 10)
	var log rpcLog
	c := e.sdkClient(t, "", &log)
	ctx := ctxT(t, time.Minute)
	before := served(e.One) + served(e.Two)
	// The Go SDK retries UNAVAILABLE six times over about 22 s (backoff
	// 60 ms × 3^attempt); one attempt is enough to see the status.
	err := c.DropCollection(ctx, milvusclient.NewDropCollectionOption("books"), grpc_retry.WithMax(1))
	st, _ := status.FromError(err)
	t.Logf("DropCollection through a 503 fixed-response: code %v, message %q", st.Code(), st.Message())
	if st.Code() != codes.Unavailable || st.Message() != "down for maintenance" {
		t.Errorf("DropCollection = %v; want code Unavailable, message %q", err, "down for maintenance")
	}
	if rpcs := log.snapshot(); len(rpcs) == 0 || rpcs[len(rpcs)-1].method != "DropCollection" || status.Code(rpcs[len(rpcs)-1].err) != codes.Unavailable {
		t.Errorf("the last RPC on the wire is not the failed DropCollection: %+v", rpcs[max(0, len(rpcs)-1):])
	}
	if d := served(e.One) + served(e.Two) - before; d != 0 {
		t.Errorf("the clusters served %d RPCs; a fixed response reaches none", d)
	}
	if ok, err := c.HasCollection(ctx, milvusclient.NewHasCollectionOption("books")); err != nil || !ok {
		t.Errorf("HasCollection(books) beside the fixed response = %v, %v; want true (not dropped)", ok, err)
	}
}
