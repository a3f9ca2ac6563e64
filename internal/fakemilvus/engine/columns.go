package engine

import (
	"encoding/json"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// decodeColumn turns one inserted FieldData into n row values for field f.
// Nullable columns may come compacted (only valid values, as the Go SDK
// sends them) or full length with placeholders; both are accepted.
func decodeColumn(f *schemapb.FieldSchema, fd *schemapb.FieldData, n int) ([]any, error) {
	if fd.GetType() != f.DataType {
		return nil, errInvalid("the data type of field %s mismatch, expected %s, got %s", f.Name, f.DataType, fd.GetType())
	}
	var vals []any
	switch f.DataType {
	case schemapb.DataType_Bool:
		vals = toAny(fd.GetScalars().GetBoolData().GetData())
	case schemapb.DataType_Int8, schemapb.DataType_Int16, schemapb.DataType_Int32:
		vals = toAny(fd.GetScalars().GetIntData().GetData())
	case schemapb.DataType_Int64:
		vals = toAny(fd.GetScalars().GetLongData().GetData())
	case schemapb.DataType_Float:
		vals = toAny(fd.GetScalars().GetFloatData().GetData())
	case schemapb.DataType_Double:
		vals = toAny(fd.GetScalars().GetDoubleData().GetData())
	case schemapb.DataType_VarChar:
		data := fd.GetScalars().GetStringData().GetData()
		limit, _ := intParam(f.TypeParams, "max_length")
		for _, s := range data {
			if int64(len(s)) > limit { // Milvus counts bytes
				return nil, errInvalid("length of varchar field %s exceeds max length, row length: %d, max length: %d", f.Name, len(s), limit)
			}
		}
		vals = toAny(data)
	case schemapb.DataType_JSON:
		data := fd.GetScalars().GetJsonData().GetData()
		vals = make([]any, len(data))
		for i, b := range data {
			if !json.Valid(b) {
				return nil, errInvalid("invalid JSON in field %s at row %d", f.Name, i)
			}
			vals[i] = append([]byte(nil), b...)
		}
	case schemapb.DataType_FloatVector:
		dim := dimOf(f)
		if got := int(fd.GetVectors().GetDim()); got != dim {
			return nil, errMismatch("the dim of field "+f.Name+" mismatch", dim, got)
		}
		flat := fd.GetVectors().GetFloatVector().GetData()
		if len(flat)%dim != 0 {
			return nil, errInvalid("the length of float vector data of field %s is not a multiple of dim %d", f.Name, dim)
		}
		vals = make([]any, len(flat)/dim)
		for i := range vals {
			vals[i] = append([]float32(nil), flat[i*dim:(i+1)*dim]...)
		}
	default:
		return nil, errInvalid("field %s: data type %s is not supported by fakemilvus", f.Name, f.DataType)
	}
	return expandNullable(f, fd.GetValidData(), vals, n)
}

func expandNullable(f *schemapb.FieldSchema, valid []bool, vals []any, n int) ([]any, error) {
	if len(valid) == 0 {
		if len(vals) != n {
			return nil, errInvalid("the num_rows (%d) of field (%s) is not equal to passed num_rows (%d)", len(vals), f.Name, n)
		}
		return vals, nil
	}
	if !f.Nullable {
		return nil, errInvalid("field %s is not nullable but valid data was passed", f.Name)
	}
	if len(valid) != n {
		return nil, errInvalid("the length of valid_data of field (%s) is not equal to passed num_rows (%d)", f.Name, n)
	}
	out := make([]any, n)
	compact := len(vals) != n
	j := 0
	for i, ok := range valid {
		switch {
		case !ok:
			if !compact {
				j++
			}
		case j >= len(vals):
			return nil, errInvalid("field %s has fewer values than valid rows", f.Name)
		default:
			out[i] = vals[j]
			j++
		}
	}
	return out, nil
}

func toAny[T any](in []T) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

// encodeColumn builds the FieldData for field position pos over the given
// rows, in row order. Nullable fields are returned full length with
// valid_data, which is the layout the SDKs expect in results.
func encodeColumn(f *schemapb.FieldSchema, rows []row, pos int) *schemapb.FieldData {
	fd := &schemapb.FieldData{
		Type:      f.DataType,
		FieldName: f.Name,
		FieldId:   f.FieldID,
		IsDynamic: f.IsDynamic,
	}
	if f.Nullable {
		fd.ValidData = make([]bool, len(rows))
		for i, r := range rows {
			fd.ValidData[i] = r[pos] != nil
		}
	}
	switch f.DataType {
	case schemapb.DataType_Bool:
		fd.Field = scalars(&schemapb.ScalarField{Data: &schemapb.ScalarField_BoolData{BoolData: &schemapb.BoolArray{Data: pick[bool](rows, pos)}}})
	case schemapb.DataType_Int8, schemapb.DataType_Int16, schemapb.DataType_Int32:
		fd.Field = scalars(&schemapb.ScalarField{Data: &schemapb.ScalarField_IntData{IntData: &schemapb.IntArray{Data: pick[int32](rows, pos)}}})
	case schemapb.DataType_Int64:
		fd.Field = scalars(&schemapb.ScalarField{Data: &schemapb.ScalarField_LongData{LongData: &schemapb.LongArray{Data: pick[int64](rows, pos)}}})
	case schemapb.DataType_Float:
		fd.Field = scalars(&schemapb.ScalarField{Data: &schemapb.ScalarField_FloatData{FloatData: &schemapb.FloatArray{Data: pick[float32](rows, pos)}}})
	case schemapb.DataType_Double:
		fd.Field = scalars(&schemapb.ScalarField{Data: &schemapb.ScalarField_DoubleData{DoubleData: &schemapb.DoubleArray{Data: pick[float64](rows, pos)}}})
	case schemapb.DataType_VarChar:
		fd.Field = scalars(&schemapb.ScalarField{Data: &schemapb.ScalarField_StringData{StringData: &schemapb.StringArray{Data: pick[string](rows, pos)}}})
	case schemapb.DataType_JSON:
		data := pick[[]byte](rows, pos)
		for i, b := range data {
			if b == nil && !f.Nullable {
				data[i] = []byte("{}")
			}
		}
		fd.Field = scalars(&schemapb.ScalarField{Data: &schemapb.ScalarField_JsonData{JsonData: &schemapb.JSONArray{Data: data}}})
	case schemapb.DataType_FloatVector:
		dim := dimOf(f)
		flat := make([]float32, 0, len(rows)*dim)
		for _, r := range rows {
			v, _ := r[pos].([]float32)
			if len(v) != dim {
				v = make([]float32, dim)
			}
			flat = append(flat, v...)
		}
		fd.Field = &schemapb.FieldData_Vectors{Vectors: &schemapb.VectorField{
			Dim:  int64(dim),
			Data: &schemapb.VectorField_FloatVector{FloatVector: &schemapb.FloatArray{Data: flat}},
		}}
	}
	return fd
}

func scalars(s *schemapb.ScalarField) *schemapb.FieldData_Scalars {
	return &schemapb.FieldData_Scalars{Scalars: s}
}

// pick collects one field of every row; nulls become the zero value.
func pick[T any](rows []row, pos int) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		if v, ok := r[pos].(T); ok {
			out[i] = v
		}
	}
	return out
}

// pkIDs builds the IDs message (IntId or StrId) for rows' primary keys.
func pkIDs(pk *schemapb.FieldSchema, keys []any) *schemapb.IDs {
	if pk.DataType == schemapb.DataType_VarChar {
		data := make([]string, len(keys))
		for i, k := range keys {
			data[i], _ = k.(string)
		}
		return &schemapb.IDs{IdField: &schemapb.IDs_StrId{StrId: &schemapb.StringArray{Data: data}}}
	}
	data := make([]int64, len(keys))
	for i, k := range keys {
		data[i], _ = k.(int64)
	}
	return &schemapb.IDs{IdField: &schemapb.IDs_IntId{IntId: &schemapb.LongArray{Data: data}}}
}
