package engine

import (
	"context"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
)

func rawSchema(t *testing.T, name string) []byte {
	t.Helper()
	b, err := proto.Marshal(&schemapb.CollectionSchema{Name: name, Fields: []*schemapb.FieldSchema{
		{Name: "id", DataType: schemapb.DataType_Int64, IsPrimaryKey: true},
		{Name: "vec", DataType: schemapb.DataType_FloatVector, TypeParams: []*commonpb.KeyValuePair{{Key: "dim", Value: "2"}}},
	}})
	if err != nil {
		t.Fatalf("marshal schema: %v", err)
	}
	return b
}

// TestNotReady checks that a stopping replica answers every implemented
// method in-body with ServiceNotReady, executes nothing, and recovers.
func TestNotReady(t *testing.T) {
	ctx := testContext(t)
	e := New()
	var stopping atomic.Bool
	stopping.Store(true)
	raw := newRawClient(t, startReplica(t, e, ServerOptions{NotReady: stopping.Load}))

	calls := []struct {
		name string
		call func() (*commonpb.Status, error)
	}{
		{"Connect", func() (*commonpb.Status, error) {
			r, err := raw.Connect(ctx, &milvuspb.ConnectRequest{})
			return r.GetStatus(), err
		}},
		{"CheckHealth", func() (*commonpb.Status, error) {
			r, err := raw.CheckHealth(ctx, &milvuspb.CheckHealthRequest{})
			return r.GetStatus(), err
		}},
		{"CreateCollection", func() (*commonpb.Status, error) {
			return raw.CreateCollection(ctx, &milvuspb.CreateCollectionRequest{CollectionName: "c", Schema: rawSchema(t, "c")})
		}},
		{"HasCollection", func() (*commonpb.Status, error) {
			r, err := raw.HasCollection(ctx, &milvuspb.HasCollectionRequest{CollectionName: "c"})
			return r.GetStatus(), err
		}},
		{"Search", func() (*commonpb.Status, error) {
			r, err := raw.Search(ctx, &milvuspb.SearchRequest{CollectionName: "c"})
			return r.GetStatus(), err
		}},
		{"Query", func() (*commonpb.Status, error) {
			r, err := raw.Query(ctx, &milvuspb.QueryRequest{CollectionName: "c"})
			return r.GetStatus(), err
		}},
		{"Insert", func() (*commonpb.Status, error) {
			r, err := raw.Insert(ctx, &milvuspb.InsertRequest{CollectionName: "c"})
			return r.GetStatus(), err
		}},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tc.call()
			if err != nil {
				t.Fatalf("gRPC error %v, want OK with in-body status", err)
			}
			if st.GetCode() != 1 || st.GetErrorCode() != commonpb.ErrorCode_NotReadyServe ||
				!st.GetRetriable() || st.GetReason() != "service not ready" {
				t.Errorf("status = %v", st)
			}
		})
	}

	stopping.Store(false)
	has, err := raw.HasCollection(ctx, &milvuspb.HasCollectionRequest{CollectionName: "c"})
	if err != nil || has.GetStatus().GetCode() != 0 || has.GetValue() {
		t.Errorf("after recovery HasCollection = %v, %v; the not-ready CreateCollection must not have run", has, err)
	}
}

func TestUnimplementedMethod(t *testing.T) {
	ctx := testContext(t)
	raw := newRawClient(t, startReplica(t, New(), ServerOptions{}))
	_, err := raw.CreatePartition(ctx, &milvuspb.CreatePartitionRequest{CollectionName: "c", PartitionName: "p"})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("CreatePartition err = %v, want Unimplemented", err)
	}
}

// TestReplicasShareState: two replicas over one Engine behave like two
// proxies of one cluster.
func TestReplicasShareState(t *testing.T) {
	ctx := testContext(t)
	e := New()
	a := newSDKClient(ctx, t, startReplica(t, e, ServerOptions{}))
	b := newSDKClient(ctx, t, startReplica(t, e, ServerOptions{}))

	if err := a.CreateCollection(ctx, milvusclient.SimpleCreateCollectionOptions("shared", 4)); err != nil {
		t.Fatalf("fast CreateCollection via a: %v", err)
	}
	ins, err := b.Insert(ctx, milvusclient.NewColumnBasedInsertOption("shared").
		WithFloatVectorColumn("vector", 4, [][]float32{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}).
		WithVarcharColumn("color", []string{"red", "green", "blue"})) // dynamic field
	if err != nil || ins.IDs.Len() != 3 {
		t.Fatalf("Insert via b (autoID) = %+v, %v", ins, err)
	}
	rs, err := a.Search(ctx, milvusclient.NewSearchOption("shared", 1, []entity.Vector{entity.FloatVector{0, 0.9, 0.1, 0}}).
		WithOutputFields("color"))
	if err != nil {
		t.Fatalf("Search via a: %v", err)
	}
	wantID, _ := ins.IDs.GetAsInt64(1)
	gotID, _ := rs[0].IDs.GetAsInt64(0)
	color, _ := rs[0].GetColumn("color").GetAsString(0)
	if gotID != wantID || color != "green" {
		t.Errorf("top hit = id %d color %q, want id %d green", gotID, color, wantID)
	}
	if got := e.RowCount(defaultDB, "shared"); got != 3 {
		t.Errorf("RowCount = %d", got)
	}
}

// TestDatabases: the dbname header selects the database, a body db_name
// overrides it, and unknown databases are reported with code 800.
func TestDatabases(t *testing.T) {
	ctx := testContext(t)
	e := New()
	addr := startReplica(t, e, ServerOptions{})
	cli := newSDKClient(ctx, t, addr)
	if err := cli.CreateDatabase(ctx, milvusclient.NewCreateDatabaseOption("db2")); err != nil {
		t.Fatalf("CreateDatabase: %v", err)
	}
	if err := cli.UseDatabase(ctx, milvusclient.NewUseDatabaseOption("db2")); err != nil {
		t.Fatalf("UseDatabase: %v", err)
	}
	if err := cli.CreateCollection(ctx, milvusclient.NewCreateCollectionOption("only_in_db2", entity.NewSchema().
		WithField(entity.NewField().WithName("pk").WithDataType(entity.FieldTypeVarChar).WithMaxLength(16).WithIsPrimaryKey(true)).
		WithField(entity.NewField().WithName("v").WithDataType(entity.FieldTypeFloatVector).WithDim(2)))); err != nil {
		t.Fatalf("CreateCollection in db2: %v", err)
	}
	if _, err := cli.Insert(ctx, milvusclient.NewColumnBasedInsertOption("only_in_db2").
		WithVarcharColumn("pk", []string{"a", "b"}).WithFloatVectorColumn("v", 2, [][]float32{{1, 2}, {3, 4}})); err != nil {
		t.Fatalf("Insert varchar pk: %v", err)
	}
	if e.RowCount("db2", "only_in_db2") != 2 || e.RowCount(defaultDB, "only_in_db2") != 0 {
		t.Errorf("rows landed in the wrong database")
	}

	raw := newRawClient(t, addr)
	withHeader := func(db string) context.Context { return metadata.AppendToOutgoingContext(ctx, "dbname", db) }
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		bodyDB   string
		wantCode int32
		wantHas  bool
	}{
		{"header db2", withHeader("db2"), "", 0, true},
		{"no header means default", ctx, "", 0, false},
		{"body wins over header", withHeader("db2"), "default", 0, false},
		{"body db2 without header", ctx, "db2", 0, true},
		{"unknown database", withHeader("nope"), "", 800, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := raw.HasCollection(tc.ctx, &milvuspb.HasCollectionRequest{DbName: tc.bodyDB, CollectionName: "only_in_db2"})
			if err != nil {
				t.Fatalf("HasCollection: %v", err)
			}
			if r.GetStatus().GetCode() != tc.wantCode || r.GetValue() != tc.wantHas {
				t.Errorf("HasCollection = code %d has %v, want code %d has %v", r.GetStatus().GetCode(), r.GetValue(), tc.wantCode, tc.wantHas)
			}
		})
	}
}
