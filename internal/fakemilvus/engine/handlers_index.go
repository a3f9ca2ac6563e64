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

func (s *server) DescribeIndex(ctx context.Context, req *milvuspb.DescribeIndexRequest) (*milvuspb.DescribeIndexResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.DescribeIndexResponse{Status: st}, nil
	}
	db := dbName(ctx, req.GetDbName())
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	c, err := s.e.collectionLocked(db, req.GetCollectionName())
	if err != nil {
		return &milvuspb.DescribeIndexResponse{Status: statusOf(err)}, nil
	}
	found := c.matchIndexes(req.GetIndexName(), req.GetFieldName())
	if len(found) == 0 {
		return &milvuspb.DescribeIndexResponse{Status: statusOf(errIndexNotFound(req.GetIndexName()))}, nil
	}
	resp := &milvuspb.DescribeIndexResponse{Status: okStatus()}
	rows := int64(len(c.rows))
	for _, idx := range found {
		resp.IndexDescriptions = append(resp.IndexDescriptions, &milvuspb.IndexDescription{
			IndexName:   idx.name,
			IndexID:     idx.id,
			Params:      idx.kvParams(),
			FieldName:   idx.fieldName,
			IndexedRows: rows,
			TotalRows:   rows,
			State:       commonpb.IndexState_Finished,
		})
	}
	return resp, nil
}

func (s *server) DropIndex(ctx context.Context, req *milvuspb.DropIndexRequest) (*commonpb.Status, error) {
	if st := s.notReady(); st != nil {
		return st, nil
	}
	db := dbName(ctx, req.GetDbName())
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	c, err := s.e.collectionLocked(db, req.GetCollectionName())
	if err != nil {
		return statusOf(err), nil
	}
	found := c.matchIndexes(req.GetIndexName(), req.GetFieldName())
	if len(found) == 0 {
		return okStatus(), nil // dropping a missing index is a no-op
	}
	if c.loaded {
		return statusOf(errInvalid("index cannot be dropped, collection is loaded, please release it first")), nil
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
	return okStatus(), nil
}

func (s *server) GetIndexState(ctx context.Context, req *milvuspb.GetIndexStateRequest) (*milvuspb.GetIndexStateResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.GetIndexStateResponse{Status: st}, nil
	}
	db := dbName(ctx, req.GetDbName())
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	c, err := s.e.collectionLocked(db, req.GetCollectionName())
	if err != nil {
		return &milvuspb.GetIndexStateResponse{Status: statusOf(err)}, nil
	}
	if len(c.matchIndexes(req.GetIndexName(), req.GetFieldName())) == 0 {
		return &milvuspb.GetIndexStateResponse{Status: statusOf(errIndexNotFound(req.GetIndexName()))}, nil
	}
	return &milvuspb.GetIndexStateResponse{Status: okStatus(), State: commonpb.IndexState_Finished}, nil
}

func (s *server) GetIndexBuildProgress(ctx context.Context, req *milvuspb.GetIndexBuildProgressRequest) (*milvuspb.GetIndexBuildProgressResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.GetIndexBuildProgressResponse{Status: st}, nil
	}
	db := dbName(ctx, req.GetDbName())
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	c, err := s.e.collectionLocked(db, req.GetCollectionName())
	if err != nil {
		return &milvuspb.GetIndexBuildProgressResponse{Status: statusOf(err)}, nil
	}
	if len(c.matchIndexes(req.GetIndexName(), req.GetFieldName())) == 0 {
		return &milvuspb.GetIndexBuildProgressResponse{Status: statusOf(errIndexNotFound(req.GetIndexName()))}, nil
	}
	rows := int64(len(c.rows))
	return &milvuspb.GetIndexBuildProgressResponse{Status: okStatus(), IndexedRows: rows, TotalRows: rows}, nil
}
