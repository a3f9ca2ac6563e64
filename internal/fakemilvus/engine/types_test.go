package engine

import (
	"encoding/json"
	"testing"

	"github.com/milvus-io/milvus/client/v2/column"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
)

// TestFieldTypesRoundTrip stores every supported scalar type next to an
// autoID primary key and reads them back with output field "*".
func TestFieldTypesRoundTrip(t *testing.T) {
	ctx := testContext(t)
	cli := newSDKClient(ctx, t, startReplica(t, New(), ServerOptions{}))
	const coll = "types"
	schema := entity.NewSchema().WithAutoID(true).
		WithField(entity.NewField().WithName("pk").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true).WithIsAutoID(true)).
		WithField(entity.NewField().WithName("v").WithDataType(entity.FieldTypeFloatVector).WithDim(2)).
		WithField(entity.NewField().WithName("f32").WithDataType(entity.FieldTypeFloat)).
		WithField(entity.NewField().WithName("f64").WithDataType(entity.FieldTypeDouble)).
		WithField(entity.NewField().WithName("b").WithDataType(entity.FieldTypeBool)).
		WithField(entity.NewField().WithName("i32").WithDataType(entity.FieldTypeInt32)).
		WithField(entity.NewField().WithName("i64").WithDataType(entity.FieldTypeInt64)).
		WithField(entity.NewField().WithName("s").WithDataType(entity.FieldTypeVarChar).WithMaxLength(8)).
		WithField(entity.NewField().WithName("j").WithDataType(entity.FieldTypeJSON))
	if err := cli.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(coll, schema)); err != nil {
		t.Fatalf("CreateCollection: %v", err)
	}
	ins, err := cli.Insert(ctx, milvusclient.NewColumnBasedInsertOption(coll).
		WithFloatVectorColumn("v", 2, [][]float32{{1, 2}, {3, 4}}).
		WithColumns(
			column.NewColumnFloat("f32", []float32{1.5, -2.5}),
			column.NewColumnDouble("f64", []float64{0.25, 1e10}),
			column.NewColumnBool("b", []bool{true, false}),
			column.NewColumnInt32("i32", []int32{-7, 7}),
			column.NewColumnInt64("i64", []int64{1 << 40, -1}),
			column.NewColumnVarChar("s", []string{"x", "yz"}),
			column.NewColumnJSONBytes("j", [][]byte{[]byte(`{"a":1}`), []byte(`[1,2]`)}),
		))
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if ins.IDs.Len() != 2 {
		t.Fatalf("autoID IDs = %d", ins.IDs.Len())
	}
	if _, err := cli.Insert(ctx, milvusclient.NewColumnBasedInsertOption(coll).
		WithFloatVectorColumn("v", 2, [][]float32{{1, 2}}).
		WithVarcharColumn("s", []string{"too long!"})); err == nil {
		t.Errorf("insert missing fields and over-long varchar succeeded")
	}

	task, err := cli.CreateIndex(ctx, milvusclient.NewCreateIndexOption(coll, "v", index.NewAutoIndex(entity.IP)))
	if err != nil || task.Await(ctx) != nil {
		t.Fatalf("CreateIndex: %v", err)
	}
	load, err := cli.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(coll))
	if err != nil || load.Await(ctx) != nil {
		t.Fatalf("Load: %v", err)
	}
	rs, err := cli.Query(ctx, milvusclient.NewQueryOption(coll).WithFilter("i32 < 0 and b == true").WithOutputFields("*"))
	if err != nil || rs.ResultCount != 1 {
		t.Fatalf("Query * = %d rows, %v", rs.ResultCount, err)
	}
	want := map[string]any{"f32": float32(1.5), "f64": 0.25, "b": true, "i32": int32(-7), "i64": int64(1 << 40), "s": "x"}
	for name, w := range want {
		if got, err := rs.GetColumn(name).Get(0); err != nil || got != w {
			t.Errorf("%s = %v (%T), %v; want %v", name, got, got, err, w)
		}
	}
	j, _ := rs.GetColumn("j").Get(0)
	var obj map[string]int
	if err := json.Unmarshal(j.([]byte), &obj); err != nil || obj["a"] != 1 {
		t.Errorf("json = %s, %v", j, err)
	}
	if pk, _ := rs.GetColumn("pk").GetAsInt64(0); pk != mustInt64(t, ins.IDs, 0) {
		t.Errorf("pk = %d, want first autoID", pk)
	}
}

func mustInt64(t *testing.T, c column.Column, i int) int64 {
	t.Helper()
	v, err := c.GetAsInt64(i)
	if err != nil {
		t.Fatalf("GetAsInt64(%d): %v", i, err)
	}
	return v
}
