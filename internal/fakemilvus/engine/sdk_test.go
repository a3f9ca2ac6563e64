package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
)

const (
	dim      = 8
	numRows  = 200
	collName = "books"
	idxName  = "vec_idx"
)

type dataset struct {
	ids   []int64
	vecs  [][]float32
	names []string
}

func makeDataset(n int) dataset {
	rng := rand.New(rand.NewPCG(7, 11))
	d := dataset{}
	for i := range n {
		v := make([]float32, dim)
		for j := range v {
			v[j] = rng.Float32()*2 - 1
		}
		d.ids = append(d.ids, int64(i))
		d.vecs = append(d.vecs, v)
		d.names = append(d.names, fmt.Sprintf("name_%d", i))
	}
	return d
}

type expectedHit struct {
	id    int64
	score float64
}

// bruteForce is the test's own reference: float64 arithmetic, L2 squared.
func bruteForce(metric entity.MetricType, d dataset, q []float32, keep func(int64) bool, topK int) []expectedHit {
	var hits []expectedHit
	for i, v := range d.vecs {
		if !keep(d.ids[i]) {
			continue
		}
		var dot, nq, nv, l2 float64
		for j := range v {
			a, b := float64(q[j]), float64(v[j])
			dot += a * b
			nq += a * a
			nv += b * b
			l2 += (a - b) * (a - b)
		}
		s := dot
		switch metric {
		case entity.L2:
			s = l2
		case entity.COSINE:
			s = dot / math.Sqrt(nq*nv)
		}
		hits = append(hits, expectedHit{d.ids[i], s})
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if metric == entity.L2 {
			return hits[i].score < hits[j].score
		}
		return hits[i].score > hits[j].score
	})
	if len(hits) > topK {
		hits = hits[:topK]
	}
	return hits
}

// TestSDKLifecycle drives one collection through the official Go SDK, step by
// step; each step depends on the previous ones.
func TestSDKLifecycle(t *testing.T) {
	ctx := testContext(t)
	e := New()
	cli := newSDKClient(ctx, t, startReplica(t, e, ServerOptions{}))
	data := makeDataset(numRows)

	schema := entity.NewSchema().
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true)).
		WithField(entity.NewField().WithName("vec").WithDataType(entity.FieldTypeFloatVector).WithDim(dim)).
		WithField(entity.NewField().WithName("name").WithDataType(entity.FieldTypeVarChar).WithMaxLength(64))

	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	step("create and describe", func(t *testing.T) {
		if err := cli.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(collName, schema)); err != nil {
			t.Fatalf("CreateCollection: %v", err)
		}
		coll, err := cli.DescribeCollection(ctx, milvusclient.NewDescribeCollectionOption(collName))
		if err != nil {
			t.Fatalf("DescribeCollection: %v", err)
		}
		if coll.ID == 0 || coll.ShardNum != 1 || coll.Name != collName {
			t.Errorf("collection = id %d shards %d name %q", coll.ID, coll.ShardNum, coll.Name)
		}
		if coll.ConsistencyLevel != entity.ClBounded {
			t.Errorf("consistency = %v, want Bounded (the SDK default)", coll.ConsistencyLevel)
		}
		if pk := coll.Schema.PKField(); pk == nil || pk.Name != "id" || pk.AutoID {
			t.Errorf("pk field = %+v", pk)
		}
		wantIDs := map[string]int64{"id": 100, "vec": 101, "name": 102}
		for _, f := range coll.Schema.Fields {
			if f.ID != wantIDs[f.Name] {
				t.Errorf("field %s id = %d, want %d", f.Name, f.ID, wantIDs[f.Name])
			}
		}
		if got := coll.Schema.Fields[1].TypeParams[entity.TypeParamDim]; got != "8" {
			t.Errorf("vec dim = %q", got)
		}
		// Re-creating with the same schema is accepted, like Milvus.
		if err := cli.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(collName, schema)); err != nil {
			t.Errorf("idempotent CreateCollection: %v", err)
		}
	})

	step("has and list", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			want bool
		}{{collName, true}, {"missing", false}} {
			has, err := cli.HasCollection(ctx, milvusclient.NewHasCollectionOption(tc.name))
			if err != nil || has != tc.want {
				t.Errorf("HasCollection(%s) = %v, %v; want %v", tc.name, has, err, tc.want)
			}
		}
		names, err := cli.ListCollections(ctx, milvusclient.NewListCollectionOption())
		if err != nil || !slices.Equal(names, []string{collName}) {
			t.Errorf("ListCollections = %v, %v", names, err)
		}
	})

	step("insert", func(t *testing.T) {
		res, err := cli.Insert(ctx, milvusclient.NewColumnBasedInsertOption(collName).
			WithInt64Column("id", data.ids).
			WithFloatVectorColumn("vec", dim, data.vecs).
			WithVarcharColumn("name", data.names))
		if err != nil {
			t.Fatalf("Insert: %v", err)
		}
		if res.InsertCount != numRows || res.IDs.Len() != numRows {
			t.Fatalf("Insert count %d ids %d", res.InsertCount, res.IDs.Len())
		}
		if got := e.RowCount(defaultDB, collName); got != numRows {
			t.Errorf("RowCount = %d", got)
		}
	})

	step("search before load fails", func(t *testing.T) {
		_, err := cli.Search(ctx, milvusclient.NewSearchOption(collName, 3, []entity.Vector{entity.FloatVector(data.vecs[0])}))
		if err == nil || !strings.Contains(err.Error(), "collection not loaded") {
			t.Errorf("Search before load err = %v", err)
		}
	})

	step("index and load", func(t *testing.T) {
		task, err := cli.CreateIndex(ctx, milvusclient.NewCreateIndexOption(collName, "vec", index.NewFlatIndex(entity.L2)).WithIndexName(idxName))
		if err != nil {
			t.Fatalf("CreateIndex: %v", err)
		}
		if err := task.Await(ctx); err != nil {
			t.Fatalf("CreateIndex Await: %v", err)
		}
		desc, err := cli.DescribeIndex(ctx, milvusclient.NewDescribeIndexOption(collName, idxName))
		if err != nil {
			t.Fatalf("DescribeIndex: %v", err)
		}
		if desc.State != index.IndexState(commonpb.IndexState_Finished) || desc.IndexedRows != numRows || desc.TotalRows != numRows {
			t.Errorf("DescribeIndex = state %v indexed %d total %d", desc.State, desc.IndexedRows, desc.TotalRows)
		}
		if mt := desc.Params()["metric_type"]; mt != "L2" {
			t.Errorf("index metric_type = %q", mt)
		}
		load, err := cli.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(collName))
		if err != nil {
			t.Fatalf("LoadCollection: %v", err)
		}
		if err := load.Await(ctx); err != nil {
			t.Fatalf("Load Await: %v", err)
		}
		state, err := cli.GetLoadState(ctx, milvusclient.NewGetLoadStateOption(collName))
		if err != nil || state.State != entity.LoadStateLoaded {
			t.Errorf("GetLoadState = %+v, %v", state, err)
		}
	})

	queries := []entity.Vector{entity.FloatVector(data.vecs[3]), entity.FloatVector(makeDataset(numRows + 1).vecs[numRows])}
	for _, tc := range []struct {
		metric entity.MetricType
		filter string
		keep   func(int64) bool
	}{
		{entity.L2, "", func(int64) bool { return true }},
		{entity.IP, "", func(int64) bool { return true }},
		{entity.COSINE, "", func(int64) bool { return true }},
		{entity.L2, "id >= 50 and id < 120", func(id int64) bool { return id >= 50 && id < 120 }},
		{entity.COSINE, "id in [1, 7, 9, 42, 199]", func(id int64) bool { return slices.Contains([]int64{1, 7, 9, 42, 199}, id) }},
	} {
		step(fmt.Sprintf("search %s filter %q", tc.metric, tc.filter), func(t *testing.T) {
			reindex(ctx, t, cli, tc.metric)
			const topK = 10
			rs, err := cli.Search(ctx, milvusclient.NewSearchOption(collName, topK, queries).
				WithANNSField("vec").WithOutputFields("name").WithFilter(tc.filter))
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if len(rs) != len(queries) {
				t.Fatalf("got %d result sets for nq=%d", len(rs), len(queries))
			}
			for qi, r := range rs {
				want := bruteForce(tc.metric, data, []float32(queries[qi].(entity.FloatVector)), tc.keep, topK)
				checkHits(t, qi, r, want)
			}
		})
	}

	step("search metric mismatch", func(t *testing.T) {
		// The index is COSINE now (last search case); asking for L2 is an error in Milvus.
		_, err := cli.Search(ctx, milvusclient.NewSearchOption(collName, 3, queries[:1]).WithSearchParam("metric_type", "L2"))
		if err == nil || !strings.Contains(err.Error(), "metric type not match") {
			t.Errorf("mismatched metric err = %v", err)
		}
	})

	step("query", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			opt    *queryCase
			wantID []int64
		}{
			{"pk in", &queryCase{filter: "id in [3, 1, 2]"}, []int64{1, 2, 3}},
			{"range", &queryCase{filter: "id >= 10 and id < 15"}, []int64{10, 11, 12, 13, 14}},
			{"greater", &queryCase{filter: "id > 196"}, []int64{197, 198, 199}},
			{"limit offset", &queryCase{limit: 3, offset: 20}, []int64{20, 21, 22}},
			{"filter limit", &queryCase{filter: "id > 100 or id < 2", limit: 4}, []int64{0, 1, 101, 102}},
			{"varchar", &queryCase{filter: `name == "name_77"`}, []int64{77}},
			{"none", &queryCase{filter: "id in []"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				opt := milvusclient.NewQueryOption(collName).WithFilter(tc.opt.filter).WithOutputFields("name")
				if tc.opt.limit > 0 {
					opt = opt.WithLimit(tc.opt.limit).WithOffset(tc.opt.offset)
				}
				rs, err := cli.Query(ctx, opt)
				if err != nil {
					t.Fatalf("Query: %v", err)
				}
				got := int64s(t, rs.GetColumn("id"))
				if !slices.Equal(got, tc.wantID) {
					t.Fatalf("ids = %v, want %v", got, tc.wantID)
				}
				for i, id := range got {
					if name, _ := rs.GetColumn("name").GetAsString(i); name != fmt.Sprintf("name_%d", id) {
						t.Errorf("row %d name = %q", id, name)
					}
				}
			})
		}
	})

	step("query star", func(t *testing.T) {
		rs, err := cli.Query(ctx, milvusclient.NewQueryOption(collName).WithFilter("id == 5").WithOutputFields("*"))
		if err != nil {
			t.Fatalf("Query *: %v", err)
		}
		v, err := rs.GetColumn("vec").Get(0)
		if err != nil || !slices.Equal([]float32(v.(entity.FloatVector)), data.vecs[5]) {
			t.Errorf("vec of id 5 = %v, %v", v, err)
		}
	})

	step("count", func(t *testing.T) {
		for filter, want := range map[string]int64{"": numRows, "id > 150": 49, "id in [1, 2, 999]": 2} {
			if got := count(ctx, t, cli, filter); got != want {
				t.Errorf("count(*) where %q = %d, want %d", filter, got, want)
			}
		}
	})

	step("delete", func(t *testing.T) {
		res, err := cli.Delete(ctx, milvusclient.NewDeleteOption(collName).WithInt64IDs("id", []int64{0, 1, 2, 1000}))
		if err != nil || res.DeleteCount != 3 {
			t.Fatalf("Delete = %+v, %v", res, err)
		}
		if got := count(ctx, t, cli, ""); got != numRows-3 {
			t.Errorf("count after delete = %d", got)
		}
		if got := e.RowCount(defaultDB, collName); got != numRows-3 {
			t.Errorf("RowCount after delete = %d", got)
		}
	})

	step("upsert", func(t *testing.T) {
		res, err := cli.Upsert(ctx, milvusclient.NewColumnBasedInsertOption(collName).
			WithInt64Column("id", []int64{1, 5}).
			WithFloatVectorColumn("vec", dim, [][]float32{data.vecs[1], data.vecs[5]}).
			WithVarcharColumn("name", []string{"again_1", "renamed_5"}))
		if err != nil || res.UpsertCount != 2 {
			t.Fatalf("Upsert = %+v, %v", res, err)
		}
		rs, err := cli.Query(ctx, milvusclient.NewQueryOption(collName).WithFilter("id in [1, 5]").WithOutputFields("name"))
		if err != nil {
			t.Fatalf("Query after upsert: %v", err)
		}
		var names []string
		for i := range rs.ResultCount {
			n, _ := rs.GetColumn("name").GetAsString(i)
			names = append(names, n)
		}
		if !slices.Equal(names, []string{"again_1", "renamed_5"}) {
			t.Errorf("names after upsert = %v", names)
		}
		if got := count(ctx, t, cli, ""); got != numRows-2 {
			t.Errorf("count after upsert = %d", got)
		}
	})

	step("stats and flush", func(t *testing.T) {
		stats, err := cli.GetCollectionStats(ctx, milvusclient.NewGetCollectionStatsOption(collName))
		if err != nil || stats["row_count"] != fmt.Sprint(numRows-2) {
			t.Errorf("GetCollectionStats = %v, %v", stats, err)
		}
		task, err := cli.Flush(ctx, milvusclient.NewFlushOption(collName))
		if err != nil {
			t.Fatalf("Flush: %v", err)
		}
		if err := task.Await(ctx); err != nil {
			t.Errorf("Flush Await: %v", err)
		}
	})

	step("drop", func(t *testing.T) {
		if err := cli.DropCollection(ctx, milvusclient.NewDropCollectionOption(collName)); err != nil {
			t.Fatalf("DropCollection: %v", err)
		}
		resp, err := cli.GetService().DescribeCollection(ctx, &milvuspb.DescribeCollectionRequest{CollectionName: collName})
		if err != nil {
			t.Fatalf("raw DescribeCollection: %v", err)
		}
		st := resp.GetStatus()
		if st.GetCode() != 100 || st.GetErrorCode() != commonpb.ErrorCode_CollectionNotExists ||
			st.GetReason() != "collection not found[collection=books]" {
			t.Errorf("status after drop = %v", st)
		}
	})
}

type queryCase struct {
	filter        string
	limit, offset int
}

// reindex swaps the vector index for one with the given metric: release,
// drop, create, load — the sequence Milvus requires.
func reindex(ctx context.Context, t *testing.T, cli *milvusclient.Client, metric entity.MetricType) {
	t.Helper()
	if err := cli.ReleaseCollection(ctx, milvusclient.NewReleaseCollectionOption(collName)); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := cli.DropIndex(ctx, milvusclient.NewDropIndexOption(collName, idxName)); err != nil {
		t.Fatalf("DropIndex: %v", err)
	}
	task, err := cli.CreateIndex(ctx, milvusclient.NewCreateIndexOption(collName, "vec", index.NewFlatIndex(metric)).WithIndexName(idxName))
	if err != nil {
		t.Fatalf("CreateIndex %s: %v", metric, err)
	}
	if err := task.Await(ctx); err != nil {
		t.Fatalf("CreateIndex Await: %v", err)
	}
	load, err := cli.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(collName))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := load.Await(ctx); err != nil {
		t.Fatalf("Load Await: %v", err)
	}
}

// checkHits compares one result set to the reference. Equal scores may come
// in either order, so an id mismatch is accepted only on a tie.
func checkHits(t *testing.T, qi int, r milvusclient.ResultSet, want []expectedHit) {
	t.Helper()
	if r.ResultCount != len(want) || len(r.Scores) != len(want) {
		t.Fatalf("query %d: %d hits (%d scores), want %d", qi, r.ResultCount, len(r.Scores), len(want))
	}
	ids := int64s(t, r.IDs)
	for i, w := range want {
		got := float64(r.Scores[i])
		if math.Abs(got-w.score) > 1e-4*math.Max(1, math.Abs(w.score)) {
			t.Errorf("query %d rank %d: score %v, want %v", qi, i, got, w.score)
		}
		if ids[i] != w.id && math.Abs(got-w.score) > 1e-6 {
			t.Errorf("query %d rank %d: id %d, want %d", qi, i, ids[i], w.id)
		}
		if name, _ := r.GetColumn("name").GetAsString(i); name != fmt.Sprintf("name_%d", ids[i]) {
			t.Errorf("query %d rank %d: name %q does not belong to id %d", qi, i, name, ids[i])
		}
	}
}

func count(ctx context.Context, t *testing.T, cli *milvusclient.Client, filter string) int64 {
	t.Helper()
	rs, err := cli.Query(ctx, milvusclient.NewQueryOption(collName).WithFilter(filter).WithOutputFields("count(*)"))
	if err != nil {
		t.Fatalf("count(*) where %q: %v", filter, err)
	}
	n, err := rs.GetColumn("count(*)").GetAsInt64(0)
	if err != nil {
		t.Fatalf("count(*) column: %v", err)
	}
	return n
}

func int64s(t *testing.T, col interface {
	Len() int
	GetAsInt64(int) (int64, error)
}) []int64 {
	t.Helper()
	var out []int64
	for i := range col.Len() {
		v, err := col.GetAsInt64(i)
		if err != nil {
			t.Fatalf("column value %d: %v", i, err)
		}
		out = append(out, v)
	}
	return out
}
