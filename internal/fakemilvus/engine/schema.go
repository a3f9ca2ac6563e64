package engine

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

const (
	// firstUserFieldID is common.StartOfUserFieldID: IDs 0 and 1 belong to
	// the hidden RowID and Timestamp fields.
	firstUserFieldID = 100
	dynamicFieldName = "$meta"
	maxDim           = 32768
)

// supportedTypes are the field types the engine stores and returns.
var supportedTypes = map[schemapb.DataType]bool{
	schemapb.DataType_Bool:        true,
	schemapb.DataType_Int8:        true,
	schemapb.DataType_Int16:       true,
	schemapb.DataType_Int32:       true,
	schemapb.DataType_Int64:       true,
	schemapb.DataType_Float:       true,
	schemapb.DataType_Double:      true,
	schemapb.DataType_VarChar:     true,
	schemapb.DataType_JSON:        true,
	schemapb.DataType_FloatVector: true,
}

// buildSchema decodes and validates a CreateCollection schema and returns the
// schema as DescribeCollection will report it (field IDs assigned, autoID on
// the pk, a $meta field for dynamic schemas), with the pk position.
func buildSchema(name string, raw []byte) (*schemapb.CollectionSchema, *schemapb.CollectionSchema, int, error) {
	requested := &schemapb.CollectionSchema{}
	if err := proto.Unmarshal(raw, requested); err != nil {
		return nil, nil, 0, fmt.Errorf("decode schema of %q: %w", name,
			errInvalid("invalid collection schema: %v", err))
	}
	if len(requested.Fields) == 0 {
		return nil, nil, 0, errInvalid("schema does not contain any field")
	}
	if len(requested.Functions) > 0 || len(requested.StructArrayFields) > 0 {
		return nil, nil, 0, errInvalid("functions and struct array fields are not supported by fakemilvus")
	}
	s := proto.Clone(requested).(*schemapb.CollectionSchema)
	s.Name = name
	pkPos := -1
	seen := make(map[string]bool, len(s.Fields))
	for i, f := range s.Fields {
		if f.Name == "" {
			return nil, nil, 0, errInvalid("field name should not be empty")
		}
		if seen[f.Name] {
			return nil, nil, 0, errInvalid("duplicated field name %s found", f.Name)
		}
		seen[f.Name] = true
		if !supportedTypes[f.DataType] {
			return nil, nil, 0, errInvalid("field %s: data type %s is not supported by fakemilvus", f.Name, f.DataType)
		}
		f.FieldID = int64(firstUserFieldID + i)
		if f.IsPrimaryKey {
			if pkPos >= 0 {
				return nil, nil, 0, errInvalid("there are more than one primary key, field name = %s, %s", s.Fields[pkPos].Name, f.Name)
			}
			if f.DataType != schemapb.DataType_Int64 && f.DataType != schemapb.DataType_VarChar {
				return nil, nil, 0, errInvalid("only int64 and varchar can be primary key field")
			}
			if s.AutoID {
				f.AutoID = true
			}
			pkPos = i
		} else if f.AutoID {
			return nil, nil, 0, errInvalid("only primary field can speficy AutoID with true, field name = %s", f.Name)
		}
		if err := checkTypeParams(f); err != nil {
			return nil, nil, 0, err
		}
	}
	if pkPos < 0 {
		return nil, nil, 0, errInvalid("primary key is not specified")
	}
	if s.EnableDynamicField {
		if seen[dynamicFieldName] {
			return nil, nil, 0, errInvalid("field name %s is reserved", dynamicFieldName)
		}
		s.Fields = append(s.Fields, &schemapb.FieldSchema{
			FieldID:     int64(firstUserFieldID + len(s.Fields)),
			Name:        dynamicFieldName,
			Description: "dynamic schema",
			DataType:    schemapb.DataType_JSON,
			IsDynamic:   true,
		})
	}
	return s, requested, pkPos, nil
}

func checkTypeParams(f *schemapb.FieldSchema) error {
	switch f.DataType {
	case schemapb.DataType_FloatVector:
		dim, err := intParam(f.TypeParams, "dim")
		if err != nil || dim <= 0 || dim > maxDim {
			return errInvalid("invalid dimension for field %s: should be in range 1 ~ %d", f.Name, maxDim)
		}
	case schemapb.DataType_VarChar:
		n, err := intParam(f.TypeParams, "max_length")
		if err != nil || n <= 0 {
			return errInvalid("type param(max_length) should be specified for the field(%s)", f.Name)
		}
	}
	return nil
}

func kvGet(kvs []*commonpb.KeyValuePair, key string) (string, bool) {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue(), true
		}
	}
	return "", false
}

func intParam(kvs []*commonpb.KeyValuePair, key string) (int64, error) {
	v, ok := kvGet(kvs, key)
	if !ok {
		return 0, fmt.Errorf("type param %s missing", key)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("type param %s=%q: %w", key, v, err)
	}
	return n, nil
}

// dimOf is the dimension of a float vector field; schemas were validated, so
// the error path is unreachable for stored fields.
func dimOf(f *schemapb.FieldSchema) int {
	d, _ := intParam(f.TypeParams, "dim")
	return int(d)
}

func isVector(t schemapb.DataType) bool { return t == schemapb.DataType_FloatVector }
