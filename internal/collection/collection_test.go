package collection

import (
	"bytes"
	"compress/gzip"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

const svc = "/milvus.proto.milvus.MilvusService/"

// TestFieldFromDescriptors checks the numbers read from the descriptors
// against messages encoded by protobuf-go: whatever number Field gives,
// Scan must find the name the message was built with.
func TestFieldFromDescriptors(t *testing.T) {
	if Methods() < 40 {
		t.Fatalf("only %d MilvusService methods with a collection field; descriptors not found?", Methods())
	}
	vec := &schemapb.FieldData{FieldName: "v", Field: &schemapb.FieldData_Vectors{Vectors: &schemapb.VectorField{
		Dim: 4, Data: &schemapb.VectorField_FloatVector{FloatVector: &schemapb.FloatArray{Data: make([]float32, 4096)}}}}}
	tests := []struct {
		method string
		msg    proto.Message
	}{
		{"Search", &milvuspb.SearchRequest{Base: &commonpb.MsgBase{MsgID: 7}, DbName: "db", CollectionName: "books", PartitionNames: []string{"p"}}},
		{"Query", &milvuspb.QueryRequest{CollectionName: "books", Expr: "id > 0"}},
		{"Insert", &milvuspb.InsertRequest{DbName: "x", CollectionName: "books", FieldsData: []*schemapb.FieldData{vec}, NumRows: 1024}},
		{"Delete", &milvuspb.DeleteRequest{CollectionName: "books", Expr: "id in [1]"}},
		{"Upsert", &milvuspb.UpsertRequest{CollectionName: "books"}},
		{"HybridSearch", &milvuspb.HybridSearchRequest{CollectionName: "books"}},
		{"GetLoadState", &milvuspb.GetLoadStateRequest{CollectionName: "books", DbName: "d"}},
		{"GetFlushState", &milvuspb.GetFlushStateRequest{CollectionName: "books", DbName: "d"}},
		{"GetPersistentSegmentInfo", &milvuspb.GetPersistentSegmentInfoRequest{CollectionName: "books"}},
		{"DescribeCollection", &milvuspb.DescribeCollectionRequest{CollectionName: "books"}},
	}
	for _, tc := range tests {
		num, ok := Field(svc + tc.method)
		if !ok {
			t.Errorf("%s: no collection field", tc.method)
			continue
		}
		b, err := proto.Marshal(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		if name, r := Scan(b, num, true); r != Found || name != "books" {
			t.Errorf("%s: Scan = %q, %v; want books, Found", tc.method, name, r)
		}
	}
	for _, m := range []string{"Connect", "ListDatabases", "CreateDatabase", "GetVersion", "ShowCollections"} {
		if n, ok := Field(svc + m); ok {
			t.Errorf("%s: collection field %d, want none", m, n)
		}
	}
}

func TestScan(t *testing.T) {
	num, _ := Field(svc + "Insert")
	full, _ := proto.Marshal(&milvuspb.InsertRequest{Base: &commonpb.MsgBase{MsgID: 1}, DbName: "db", CollectionName: "books",
		FieldsData: []*schemapb.FieldData{{FieldName: "id"}}, NumRows: 3})
	noName, _ := proto.Marshal(&milvuspb.InsertRequest{DbName: "db", NumRows: 3})
	cut := protowire.AppendTag(nil, num, protowire.BytesType)
	cut = protowire.AppendVarint(cut, 5)
	cut = append(cut, "boo"...)
	twice := protowire.AppendTag(append([]byte(nil), full...), num, protowire.BytesType)
	twice = protowire.AppendString(twice, "secret")
	tests := []struct {
		name  string
		msg   []byte
		whole bool
		want  Result
		coll  string
	}{
		{"whole", full, true, Found, "books"},
		{"the field twice: the last wins, as in protobuf", twice, true, Found, "secret"},
		{"the field twice, the second cut off: the first so far", twice[:len(twice)-1], false, Found, "books"},
		{"prefix with the name", full[:20], false, Found, "books"},
		{"prefix cut inside the name", cut, false, More, ""},
		{"whole message cut inside the name", cut, true, Malformed, ""},
		{"no name, whole", noName, true, Absent, ""},
		{"no name, prefix", noName, false, More, ""},
		{"empty whole message", nil, true, Absent, ""},
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true, Malformed, ""},
		{"end-group without start", []byte{0x0c}, true, Malformed, ""},
	}
	for _, tc := range tests {
		got, r := Scan(tc.msg, num, tc.whole)
		if r != tc.want || got != tc.coll {
			t.Errorf("%s: Scan = %q, %v; want %q, %v", tc.name, got, r, tc.coll, tc.want)
		}
	}
}

// A gzip-compressed first message is read after inflating its start,
// however little of it has arrived; bytes that are not gzip are Malformed.
func TestScanGzip(t *testing.T) {
	num, _ := Field(svc + "Search")
	plain, err := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books", Dsl: string(make([]byte, 100<<10))})
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain)
	zw.Close()
	gz := append([]byte(nil), z.Bytes()...)
	unnamed, _ := proto.Marshal(&milvuspb.SearchRequest{DbName: "d"})
	z.Reset()
	zw = gzip.NewWriter(&z)
	zw.Write(unnamed)
	zw.Close()
	gzUnnamed := append([]byte(nil), z.Bytes()...)
	for _, tc := range []struct {
		name  string
		msg   []byte
		whole bool
		want  Result
	}{
		{"whole", gz, true, Found},
		{"first 40 bytes", gz[:40], false, Found},
		{"header only", gz[:8], false, More},
		{"nothing yet", nil, false, More},
		{"whole, no name", gzUnnamed, true, Absent},
		{"not gzip", []byte("this is not gzip at all"), true, Malformed},
		{"not gzip, partial", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff}, false, Malformed},
	} {
		name, res := ScanGzip(tc.msg, num, tc.whole, 64<<10)
		if res != tc.want || (res == Found && name != "books") {
			t.Errorf("%s: %q, %v; want %v", tc.name, name, res, tc.want)
		}
	}
	// The name beyond the inflation limit: More while not whole (the
	// caller's limit ends it), Absent once whole.
	far, _ := proto.Marshal(&milvuspb.SearchRequest{DbName: string(make([]byte, 80<<10)), CollectionName: "books"})
	z.Reset()
	zw = gzip.NewWriter(&z)
	zw.Write(far)
	zw.Close()
	if _, res := ScanGzip(z.Bytes(), num, false, 64<<10); res != More {
		t.Errorf("name past the limit, partial: %v, want More", res)
	}
	if _, res := ScanGzip(z.Bytes(), num, true, 64<<10); res != Absent {
		t.Errorf("name past the limit, whole: %v, want Absent", res)
	}
}
