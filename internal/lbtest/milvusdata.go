package lbtest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l7lb/l7lb/internal/fakemilvus"
)

// DirectClient connects the Go SDK straight to a cluster's first replica
// (h2c), bypassing l7lb: for setting data up.
func DirectClient(t testing.TB, cl *fakemilvus.Cluster) *milvusclient.Client {
	t.Helper()
	opts := append(slices.Clone(milvusclient.DefaultGrpcOpts), grpc.WithTransportCredentials(insecure.NewCredentials()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := milvusclient.New(ctx, &milvusclient.ClientConfig{Address: cl.Addrs()[0], DialOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) }) //nolint:errcheck // end of test
	return c
}

// SeedDim is the dimension of CreateLoaded's vectors.
const SeedDim = 4

// CreateLoaded creates collection name in database db ("" is default) on
// cluster cl, with rows rows (id, vector), a FLAT index, and loads it.
func CreateLoaded(t testing.TB, cl *fakemilvus.Cluster, db, name string, rows int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := DirectClient(t, cl)
	if db != "" {
		if err := c.CreateDatabase(ctx, milvusclient.NewCreateDatabaseOption(db)); err != nil && !strings.Contains(err.Error(), "already exist") {
			t.Fatalf("create database %s: %v", db, err)
		}
		if err := c.UseDatabase(ctx, milvusclient.NewUseDatabaseOption(db)); err != nil {
			t.Fatalf("use database %s: %v", db, err)
		}
	}
	schema := entity.NewSchema().WithName(name).
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true)).
		WithField(entity.NewField().WithName("vector").WithDataType(entity.FieldTypeFloatVector).WithDim(SeedDim))
	if err := c.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(name, schema)); err != nil {
		t.Fatalf("create collection %s.%s: %v", db, name, err)
	}
	ids, vecs := SeedRows(0, rows)
	if _, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption(name).
		WithInt64Column("id", ids).WithFloatVectorColumn("vector", SeedDim, vecs)); err != nil {
		t.Fatalf("insert into %s.%s: %v", db, name, err)
	}
	it, err := c.CreateIndex(ctx, milvusclient.NewCreateIndexOption(name, "vector", index.NewFlatIndex(entity.L2)))
	if err == nil {
		err = it.Await(ctx)
	}
	if err != nil {
		t.Fatalf("index %s.%s: %v", db, name, err)
	}
	lt, err := c.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(name))
	if err == nil {
		err = lt.Await(ctx)
	}
	if err != nil {
		t.Fatalf("load %s.%s: %v", db, name, err)
	}
}

// SeedRows returns n rows of CreateLoaded's schema (id, vector) with
// ids from+1 on.
func SeedRows(from, n int) ([]int64, [][]float32) {
	ids := make([]int64, n)
	vecs := make([][]float32, n)
	for i := range ids {
		ids[i] = int64(from + i + 1)
		vecs[i] = []float32{float32(from + i), 1, 2, 3}
	}
	return ids, vecs
}
