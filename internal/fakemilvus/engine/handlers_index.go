package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// Index building is instantaneous: search is brute force whatever the index
// type, so an index only records its metric type and reports Finished.

var floatMetrics = map[string]bool{"L2": true, "IP": true, "COSINE": true}

func (s *server) CreateIndex(ctx context.Context, req *milvuspb.CreateIndexRequest) (*commonpb.Status, error) {
	if st := s.notReady(); st != nil {
		return st, nil
	}
	return statusOf(s.e.createIndex(dbName(ctx, req.GetDbName()), req)), nil
}

func (e *Engine) createIndex(db string, req *milvuspb.CreateIndexRequest) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.collectionLocked(db, req.GetCollectionName())
	if err != nil {
		return err
	}
	_, f := c.field(req.GetFieldName())
	if f == nil || f.IsDynamic {
		return fmt.Errorf("create index on %s.%s: %w", c.name, req.GetFieldName(), errFieldNotFound(req.GetFieldName()))
	}
	idx, err := parseIndexParams(f, req.GetExtraParams())
	if err != nil {
		return fmt.Errorf("create index on %s.%s: %w", c.name, f.Name, err)
	}
	idx.name = req.GetIndexName()
	if idx.name == "" {
		idx.name = fmt.Sprintf("_default_idx_%d", f.FieldID) // proxy createIndexTask default
	}
	if old := c.indexOnField(f.Name); old != nil {
		if old.name == idx.name && old.indexType == idx.indexType && old.metric == idx.metric && maps.Equal(old.params, idx.params) {
			return nil // same index again: Milvus answers success
		}
		return errInvalid("at most one distinct index is allowed per field")
	}
	for _, other := range c.index {
		if other.name == idx.name {
			return errInvalid("index name %s already exists on field %s", idx.name, other.fieldName)
		}
	}
	ts := e.clock.next()
	idx.id, idx.createdTs = int64(ts), ts
	idx.fieldName, idx.fieldID = f.Name, f.FieldID
	c.index = append(c.index, idx)
	return nil
}

// parseIndexParams accepts both the Go SDK layout (flat keys) and the
// pymilvus/Node layout (index_type, metric_type, params as a JSON object).
func parseIndexParams(f *schemapb.FieldSchema, kvs []*commonpb.KeyValuePair) (*indexMeta, error) {
	idx := &indexMeta{params: make(map[string]string)}
	for _, kv := range kvs {
		switch kv.GetKey() {
		case "index_type":
			idx.indexType = kv.GetValue()
		case "metric_type":
			idx.metric = strings.ToUpper(kv.GetValue())
		case "params":
			var nested map[string]any
			if err := json.Unmarshal([]byte(kv.GetValue()), &nested); err != nil {
				return nil, errInvalid("index params %q is not a JSON object", kv.GetValue())
			}
			for k, v := range nested {
				if k == "metric_type" {
					idx.metric = strings.ToUpper(fmt.Sprint(v))
					continue
				}
				idx.params[k] = fmt.Sprint(v)
			}
		default:
			idx.params[kv.GetKey()] = kv.GetValue()
		}
	}
	if idx.indexType == "" {
		idx.indexType = "AUTOINDEX"
	}
	if isVector(f.DataType) {
		if idx.metric == "" {
			idx.metric = "COSINE" // Milvus's default metric for float vectors
		}
		if !floatMetrics[idx.metric] {
			return nil, errInvalid("metric type %s not found or not supported, supported: [L2 IP COSINE]", idx.metric)
		}
	} else if idx.metric != "" {
		return nil, errInvalid("metric type is not allowed on scalar field %s", f.Name)
	}
	return idx, nil
}

func (idx *indexMeta) kvParams() []*commonpb.KeyValuePair {
	out := []*commonpb.KeyValuePair{{Key: "index_type", Value: idx.indexType}}
	if idx.metric != "" {
		out = append(out, &commonpb.KeyValuePair{Key: "metric_type", Value: idx.metric})
	}
	keys := make([]string, 0, len(idx.params))
	for k := range idx.params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, &commonpb.KeyValuePair{Key: k, Value: idx.params[k]})
	}
	return out
}

// matchIndexes selects indexes by name and/or field; empty means any.
func (c *collection) matchIndexes(indexName, fieldName string) []*indexMeta {
	var out []*indexMeta
	for _, idx := range c.index {
		if (indexName == "" || idx.name == indexName) && (fieldName == "" || idx.fieldName == fieldName) {
			out = append(out, idx)
		}
	}
	return out
}

// existingIndexes is matchIndexes for the calls that, like Milvus, fail with
// index not found when nothing matches.
func (c *collection) existingIndexes(indexName, fieldName string) ([]*indexMeta, error) {
	found := c.matchIndexes(indexName, fieldName)
	if len(found) == 0 {
		return nil, errIndexNotFound(indexName)
	}
	return found, nil
}

func (s *server) DescribeIndex(ctx context.Context, req *milvuspb.DescribeIndexRequest) (*milvuspb.DescribeIndexResponse, error) {
	resp := &milvuspb.DescribeIndexResponse{}
	err := s.viewCollection(ctx, req, func(c *collection) error {
		found, err := c.existingIndexes(req.GetIndexName(), req.GetFieldName())
		if err != nil {
			return err
		}
		resp.IndexDescriptions = c.describeIndexes(found)
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}

// describeIndexes reports every index as finished over all rows: building is
// instantaneous.
func (c *collection) describeIndexes(found []*indexMeta) []*milvuspb.IndexDescription {
	rows := int64(len(c.rows))
	out := make([]*milvuspb.IndexDescription, 0, len(found))
	for _, idx := range found {
		out = append(out, &milvuspb.IndexDescription{
			IndexName:   idx.name,
			IndexID:     idx.id,
			Params:      idx.kvParams(),
			FieldName:   idx.fieldName,
			IndexedRows: rows,
			TotalRows:   rows,
			State:       commonpb.IndexState_Finished,
		})
	}
	return out
}

func (s *server) DropIndex(ctx context.Context, req *milvuspb.DropIndexRequest) (*commonpb.Status, error) {
	return statusOf(s.updateCollection(ctx, req, func(c *collection) error {
		return c.dropIndexes(req.GetIndexName(), req.GetFieldName())
	})), nil
}

// dropIndexes removes the matching indexes; dropping a missing index is a
// no-op, dropping one of a loaded collection is refused.
func (c *collection) dropIndexes(indexName, fieldName string) error {
	found := c.matchIndexes(indexName, fieldName)
	if len(found) == 0 {
		return nil
	}
	if c.loaded {
		return errInvalid("index cannot be dropped, collection is loaded, please release it first")
	}
	gone := make(map[*indexMeta]bool, len(found))
	for _, idx := range found {
		gone[idx] = true
	}
	kept := c.index[:0]
	for _, idx := range c.index {
		if !gone[idx] {
			kept = append(kept, idx)
		}
	}
	c.index = kept
	return nil
}

func (s *server) GetIndexState(ctx context.Context, req *milvuspb.GetIndexStateRequest) (*milvuspb.GetIndexStateResponse, error) {
	resp := &milvuspb.GetIndexStateResponse{}
	err := s.viewCollection(ctx, req, func(c *collection) error {
		if _, err := c.existingIndexes(req.GetIndexName(), req.GetFieldName()); err != nil {
			return err
		}
		resp.State = commonpb.IndexState_Finished
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}

func (s *server) GetIndexBuildProgress(ctx context.Context, req *milvuspb.GetIndexBuildProgressRequest) (*milvuspb.GetIndexBuildProgressResponse, error) {
	resp := &milvuspb.GetIndexBuildProgressResponse{}
	err := s.viewCollection(ctx, req, func(c *collection) error {
		if _, err := c.existingIndexes(req.GetIndexName(), req.GetFieldName()); err != nil {
			return err
		}
		resp.IndexedRows = int64(len(c.rows))
		resp.TotalRows = resp.IndexedRows
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}
