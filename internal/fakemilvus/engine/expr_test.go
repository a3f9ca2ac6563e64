package engine

import (
	"slices"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

func exprCollection() *collection {
	c := &collection{
		schema: &schemapb.CollectionSchema{Fields: []*schemapb.FieldSchema{
			{Name: "id", DataType: schemapb.DataType_Int64, IsPrimaryKey: true},
			{Name: "name", DataType: schemapb.DataType_VarChar, TypeParams: []*commonpb.KeyValuePair{{Key: "max_length", Value: "16"}}},
			{Name: "score", DataType: schemapb.DataType_Double},
			{Name: "ok", DataType: schemapb.DataType_Bool},
		}},
		dynPos: -1,
		byPK:   map[any]int{},
	}
	for i, n := range []string{"apple", "banana", "cherry", "date", "elder"} {
		c.put(row{int64(i + 1), n, float64(i) / 2, i%2 == 0})
	}
	return c
}

func TestCompileFilter(t *testing.T) {
	c := exprCollection()
	tmpl := map[string]*schemapb.TemplateValue{
		"ids": {Val: &schemapb.TemplateValue_ArrayVal{ArrayVal: &schemapb.TemplateArrayValue{
			Data: &schemapb.TemplateArrayValue_LongData{LongData: &schemapb.LongArray{Data: []int64{2, 4}}}}}},
		"min": {Val: &schemapb.TemplateValue_Int64Val{Int64Val: 4}},
	}
	for _, tc := range []struct {
		expr    string
		want    []int64
		wantErr bool
	}{
		{expr: "", want: []int64{1, 2, 3, 4, 5}},
		{expr: "id in [1,2,3]", want: []int64{1, 2, 3}},
		{expr: "id not in [1, 2, 3]", want: []int64{4, 5}},
		{expr: "id > 3", want: []int64{4, 5}},
		{expr: "id >= 2 and id < 4", want: []int64{2, 3}},
		{expr: "id >= 2 AND id < 4", want: []int64{2, 3}},
		{expr: "3 < id", want: []int64{4, 5}},
		{expr: "id == 1 || id == 5", want: []int64{1, 5}},
		{expr: "not (id <= 4)", want: []int64{5}},
		{expr: "!(id != 2)", want: []int64{2}},
		{expr: "id > -1 && id < 2.5", want: []int64{1, 2}},
		{expr: `name == "cherry"`, want: []int64{3}},
		{expr: `name in ['apple', "date"]`, want: []int64{1, 4}},
		{expr: `name like "b%"`, want: []int64{2}},
		{expr: "score >= 1.0", want: []int64{3, 4, 5}},
		{expr: "ok == true", want: []int64{1, 3, 5}},
		{expr: "id in {ids}", want: []int64{2, 4}},
		{expr: "id >= {min}", want: []int64{4, 5}},
		{expr: "id in []", want: nil},
		{expr: "missing > 1", wantErr: true},
		{expr: `id == "x"`, wantErr: true},
		{expr: "id in [1, 2", wantErr: true},
		{expr: "id >", wantErr: true},
		{expr: "ok > true", wantErr: true},
		{expr: "id in {nope}", wantErr: true},
		{expr: "id == 1 extra", wantErr: true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			pred, err := compileFilter(c, tc.expr, tmpl)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error")
				}
				if st := statusOf(err); st.GetCode() != codeParameterInvalid {
					t.Errorf("status = %v, want code 1100", st)
				}
				return
			}
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			var got []int64
			for _, r := range c.rows {
				if matches(pred, r) {
					got = append(got, r[0].(int64))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
		})
	}
}
