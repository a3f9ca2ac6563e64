package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// maxResultWindow is quotaAndLimits.limits.maxQueryResultWindow (offset+limit)
// and also the topK limit.
const maxResultWindow = 16384

const countStar = "count(*)"

func (s *server) Query(ctx context.Context, req *milvuspb.QueryRequest) (*milvuspb.QueryResults, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.QueryResults{Status: st}, nil
	}
	resp, err := s.e.query(dbName(ctx, req.GetDbName()), req)
	if err != nil {
		return &milvuspb.QueryResults{Status: statusOf(err)}, nil
	}
	return resp, nil
}

func (e *Engine) query(db string, req *milvuspb.QueryRequest) (*milvuspb.QueryResults, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	c, err := e.readableLocked(db, req)
	if err != nil {
		return nil, err
	}
	count, err := isCountQuery(req.GetOutputFields())
	if err != nil {
		return nil, err
	}
	limit, hasLimit, err := queryParam(req.GetQueryParams(), "limit")
	if err != nil {
		return nil, err
	}
	offset, _, err := queryParam(req.GetQueryParams(), "offset")
	if err != nil {
		return nil, err
	}
	if hasLimit && (limit <= 0 || offset+limit > maxResultWindow) {
		return nil, errInvalid("(offset+limit) should be in range [1, %d], but got %d", maxResultWindow, offset+limit)
	}
	if strings.TrimSpace(req.GetExpr()) == "" && !hasLimit && !count {
		return nil, errInvalid("empty expression should be used with limit")
	}
	pred, err := compileFilter(c, req.GetExpr(), req.GetExprTemplateValues())
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", c.name, err)
	}
	var hits []row
	for _, r := range c.rows {
		if matches(pred, r) {
			hits = append(hits, r)
		}
	}
	resp := &milvuspb.QueryResults{
		Status:           okStatus(),
		CollectionName:   c.name,
		PrimaryFieldName: c.pkField().Name,
		SessionTs:        e.clock.next(),
	}
	if count {
		resp.OutputFields = []string{countStar}
		resp.FieldsData = []*schemapb.FieldData{{
			Type:      schemapb.DataType_Int64,
			FieldName: countStar,
			Field: scalars(&schemapb.ScalarField{Data: &schemapb.ScalarField_LongData{
				LongData: &schemapb.LongArray{Data: []int64{int64(len(hits))}},
			}}),
		}}
		return resp, nil
	}
	// Milvus reduces query results in primary-key order; the query iterator
	// relies on it, and it makes limit/offset deterministic.
	sort.Slice(hits, func(i, j int) bool { return cmpValues(hits[i][c.pkPos], hits[j][c.pkPos]) < 0 })
	hits = window(hits, int(offset), int(limit), hasLimit)
	plan, err := c.planOutputs(req.GetOutputFields(), true)
	if err != nil {
		return nil, err
	}
	resp.OutputFields = plan.names
	resp.FieldsData = c.encodeOutputs(plan, hits)
	return resp, nil
}

// readableLocked finds the collection that a Query or Search reads: like
// Milvus, both need it loaded and every partition they name to exist. The
// caller holds e.mu.
func (e *Engine) readableLocked(db string, req partitionsRequest) (*collection, error) {
	c, err := e.collectionLocked(db, req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	if !c.loaded {
		return nil, errCollectionNotLoaded(c.name)
	}
	if err := checkPartitions(req.GetPartitionNames()); err != nil {
		return nil, err
	}
	return c, nil
}

// isCountQuery recognises output_fields ["count(*)"]; count(*) cannot be
// mixed with other fields.
func isCountQuery(fields []string) (bool, error) {
	count := false
	for _, f := range fields {
		if strings.ReplaceAll(strings.ToLower(f), " ", "") == countStar {
			count = true
		}
	}
	if count && len(fields) > 1 {
		return false, errInvalid("count entities with pagination is not allowed")
	}
	return count, nil
}

func queryParam(kvs []*commonpb.KeyValuePair, key string) (int64, bool, error) {
	v, ok := kvGet(kvs, key)
	if !ok || v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, errInvalid("%s [%s] is invalid, should be a non-negative integer", key, v)
	}
	return n, true, nil
}

func window[T any](items []T, offset, limit int, hasLimit bool) []T {
	if offset >= len(items) {
		return nil
	}
	items = items[offset:]
	if hasLimit && limit < len(items) {
		items = items[:limit]
	}
	return items
}
