package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Connect opens an official Milvus Go SDK client to addr over TLS, trusting
// roots and sending serverName as SNI: the Go form of pymilvus's
// connect(host, port, secure=True, server_name=...).
func Connect(ctx context.Context, addr, serverName string, roots *x509.CertPool, extra ...grpc.DialOption) (*milvusclient.Client, error) {
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12})
	opts := append(slices.Clone(milvusclient.DefaultGrpcOpts), grpc.WithTransportCredentials(creds))
	opts = append(opts, extra...)
	return milvusclient.New(ctx, &milvusclient.ClientConfig{Address: addr, DialOptions: opts})
}

// Session is what the demo does with the SDK, the ordinary first session
// of a Milvus user: create a collection, insert vectors, build an index,
// load, search and query. It checks every answer.
type Session struct {
	Collection string
	Rows       int
	Dim        int
	TopK       int
	Queries    int
	Seed       uint64
}

// Report says what a Session did.
type Report struct {
	Inserted      int64
	Searches      int
	SearchHitsOK  int
	QueryRows     int
	CountStar     int64
	RPCsBySession int
}

// Run executes the session against c. It returns an error at the first
// wrong answer.
func (s Session) Run(ctx context.Context, c *milvusclient.Client) (Report, error) {
	var rep Report
	rng := rand.New(rand.NewPCG(s.Seed, 42))
	schema := entity.NewSchema().WithName(s.Collection).
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true)).
		WithField(entity.NewField().WithName("tag").WithDataType(entity.FieldTypeVarChar).WithMaxLength(64)).
		WithField(entity.NewField().WithName("vector").WithDataType(entity.FieldTypeFloatVector).WithDim(int64(s.Dim)))
	if err := c.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(s.Collection, schema)); err != nil {
		return rep, fmt.Errorf("create collection %s: %w", s.Collection, err)
	}
	ids := make([]int64, s.Rows)
	tags := make([]string, s.Rows)
	vecs := make([][]float32, s.Rows)
	for i := range ids {
		ids[i] = int64(i + 1)
		tags[i] = fmt.Sprintf("row-%d", i+1)
		vecs[i] = randomVector(rng, s.Dim)
	}
	// Insert in batches, as real clients do for large loads.
	const batch = 250
	for start := 0; start < s.Rows; start += batch {
		end := min(start+batch, s.Rows)
		res, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption(s.Collection).
			WithInt64Column("id", ids[start:end]).
			WithVarcharColumn("tag", tags[start:end]).
			WithFloatVectorColumn("vector", s.Dim, vecs[start:end]))
		if err != nil {
			return rep, fmt.Errorf("insert rows %d-%d: %w", start+1, end, err)
		}
		rep.Inserted += res.InsertCount
	}
	if rep.Inserted != int64(s.Rows) {
		return rep, fmt.Errorf("inserted %d rows, want %d", rep.Inserted, s.Rows)
	}
	idxTask, err := c.CreateIndex(ctx, milvusclient.NewCreateIndexOption(s.Collection, "vector", index.NewFlatIndex(entity.L2)))
	if err != nil {
		return rep, fmt.Errorf("create index: %w", err)
	}
	if err := idxTask.Await(ctx); err != nil {
		return rep, fmt.Errorf("wait for index: %w", err)
	}
	loadTask, err := c.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(s.Collection))
	if err != nil {
		return rep, fmt.Errorf("load collection: %w", err)
	}
	if err := loadTask.Await(ctx); err != nil {
		return rep, fmt.Errorf("wait for load: %w", err)
	}
	for q := 0; q < s.Queries; q++ {
		query := randomVector(rng, s.Dim)
		rs, err := c.Search(ctx, milvusclient.NewSearchOption(s.Collection, s.TopK, []entity.Vector{entity.FloatVector(query)}).
			WithANNSField("vector").WithOutputFields("tag"))
		if err != nil {
			return rep, fmt.Errorf("search %d: %w", q, err)
		}
		rep.Searches++
		if len(rs) != 1 {
			return rep, fmt.Errorf("search %d: %d result sets, want 1", q, len(rs))
		}
		want := bruteForceL2(vecs, query, s.TopK)
		got := make([]int64, rs[0].IDs.Len())
		for i := range got {
			if got[i], err = rs[0].IDs.GetAsInt64(i); err != nil {
				return rep, fmt.Errorf("search %d: id %d: %w", q, i, err)
			}
		}
		if !slices.Equal(got, want) {
			return rep, fmt.Errorf("search %d: hits %v, brute force says %v", q, got, want)
		}
		tagCol := rs[0].GetColumn("tag")
		if tagCol == nil || tagCol.Len() != len(got) {
			return rep, fmt.Errorf("search %d: output field tag missing", q)
		}
		for i, id := range got {
			if v, _ := tagCol.GetAsString(i); v != fmt.Sprintf("row-%d", id) {
				return rep, fmt.Errorf("search %d: tag of id %d is %q", q, id, v)
			}
		}
		rep.SearchHitsOK++
	}
	qr, err := c.Query(ctx, milvusclient.NewQueryOption(s.Collection).WithFilter("id in [1, 2, 3]").WithOutputFields("id", "tag"))
	if err != nil {
		return rep, fmt.Errorf("query: %w", err)
	}
	rep.QueryRows = qr.ResultCount
	if qr.ResultCount != min(3, s.Rows) {
		return rep, fmt.Errorf("query id in [1,2,3]: %d rows", qr.ResultCount)
	}
	cr, err := c.Query(ctx, milvusclient.NewQueryOption(s.Collection).WithOutputFields("count(*)"))
	if err != nil {
		return rep, fmt.Errorf("query count(*): %w", err)
	}
	if col := cr.GetColumn("count(*)"); col != nil && col.Len() == 1 {
		rep.CountStar, _ = col.GetAsInt64(0)
	}
	if rep.CountStar != int64(s.Rows) {
		return rep, fmt.Errorf("count(*) = %d, want %d", rep.CountStar, s.Rows)
	}
	return rep, nil
}

func randomVector(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}

// bruteForceL2 is the expected answer: the ids (1-based row numbers) of
// the k nearest vectors by squared L2 distance, nearest first.
func bruteForceL2(vecs [][]float32, q []float32, k int) []int64 {
	type hit struct {
		id   int64
		dist float64
	}
	hits := make([]hit, len(vecs))
	for i, v := range vecs {
		var d float64
		for j := range v {
			x := float64(v[j] - q[j])
			d += x * x
		}
		hits[i] = hit{int64(i + 1), d}
	}
	sort.SliceStable(hits, func(a, b int) bool {
		if hits[a].dist != hits[b].dist {
			return hits[a].dist < hits[b].dist
		}
		return hits[a].id < hits[b].id
	})
	out := make([]int64, 0, k)
	for _, h := range hits[:min(k, len(hits))] {
		if !math.IsNaN(h.dist) {
			out = append(out, h.id)
		}
	}
	return out
}
