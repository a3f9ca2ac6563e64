package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

func (s *server) Search(ctx context.Context, req *milvuspb.SearchRequest) (*milvuspb.SearchResults, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.SearchResults{Status: st}, nil
	}
	resp, err := s.e.search(dbName(ctx, req.GetDbName()), req)
	if err != nil {
		return &milvuspb.SearchResults{Status: statusOf(err)}, nil
	}
	return resp, nil
}

// searchParams are the search_params key-value pairs both SDKs send:
// anns_field, topk, offset, metric_type, round_decimal, params (JSON).
type searchParams struct {
	annsField    string
	topK, offset int
	metric       string
	roundDecimal int
}

func parseSearchParams(kvs []*commonpb.KeyValuePair) (searchParams, error) {
	p := searchParams{roundDecimal: -1}
	p.annsField, _ = kvGet(kvs, "anns_field")
	m, _ := kvGet(kvs, "metric_type")
	p.metric = strings.ToUpper(m)
	topk, ok := kvGet(kvs, "topk")
	if !ok {
		topk, ok = kvGet(kvs, "limit")
	}
	if !ok {
		return p, errInvalid("topk not found in search_params")
	}
	n, err := strconv.Atoi(topk)
	if err != nil || n <= 0 || n > maxResultWindow {
		return p, errInvalid("topk [%s] is invalid, it should be in range [1, %d]", topk, maxResultWindow)
	}
	p.topK = n
	if v, ok := kvGet(kvs, "offset"); ok && v != "" {
		if p.offset, err = strconv.Atoi(v); err != nil || p.offset < 0 || p.offset+p.topK > maxResultWindow {
			return p, errInvalid("offset [%s] is invalid, (offset+topk) should be in range [1, %d]", v, maxResultWindow)
		}
	}
	if v, ok := kvGet(kvs, "round_decimal"); ok && v != "" {
		if p.roundDecimal, err = strconv.Atoi(v); err != nil || p.roundDecimal < -1 || p.roundDecimal > 6 {
			return p, errInvalid("round_decimal [%s] is invalid, should be -1 or an integer in range [0, 6]", v)
		}
	}
	if v, ok := kvGet(kvs, "group_by_field"); ok && v != "" {
		return p, errInvalid("group by search is not supported by fakemilvus")
	}
	return p, nil
}

func (e *Engine) search(db string, req *milvuspb.SearchRequest) (*milvuspb.SearchResults, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	c, err := e.readableLocked(db, req)
	if err != nil {
		return nil, err
	}
	p, err := parseSearchParams(req.GetSearchParams())
	if err != nil {
		return nil, err
	}
	vecPos, err := c.annsField(p.annsField)
	if err != nil {
		return nil, err
	}
	vf := c.schema.Fields[vecPos]
	idx := c.indexOnField(vf.Name)
	if idx == nil { // unreachable while loaded, kept as a guard
		return nil, errIndexNotFoundForCollection(c.name)
	}
	metric := idx.metric
	if p.metric != "" && p.metric != metric {
		return nil, errMismatch("metric type not match", metric, p.metric)
	}
	queries, err := c.queryVectors(req, vf, vecPos)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", c.name, err)
	}
	pred, err := compileFilter(c, req.GetDsl(), req.GetExprTemplateValues())
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", c.name, err)
	}
	var candidates []row
	for _, r := range c.rows {
		if r[vecPos] != nil && matches(pred, r) {
			candidates = append(candidates, r)
		}
	}
	plan, err := c.planOutputs(req.GetOutputFields(), false)
	if err != nil {
		return nil, err
	}

	type hit struct {
		r     row
		score float32
	}
	asc := smallerIsBetter(metric)
	var (
		hitRows []row
		keys    []any
		scores  []float32
		topks   = make([]int64, 0, len(queries))
	)
	for _, q := range queries {
		hits := make([]hit, len(candidates))
		for i, r := range candidates {
			hits[i] = hit{r, score(metric, q, r[vecPos].([]float32))}
		}
		sort.SliceStable(hits, func(i, j int) bool {
			if asc {
				return hits[i].score < hits[j].score
			}
			return hits[i].score > hits[j].score
		})
		hits = window(hits, p.offset, p.topK, true)
		topks = append(topks, int64(len(hits)))
		for _, h := range hits {
			hitRows = append(hitRows, h.r)
			keys = append(keys, h.r[c.pkPos])
			scores = append(scores, roundTo(h.score, p.roundDecimal))
		}
	}
	return &milvuspb.SearchResults{
		Status:         okStatus(),
		CollectionName: c.name,
		SessionTs:      e.clock.next(),
		Results: &schemapb.SearchResultData{
			NumQueries:       int64(len(queries)),
			TopK:             int64(p.topK),
			FieldsData:       c.encodeOutputs(plan, hitRows),
			Scores:           scores,
			Ids:              pkIDs(c.pkField(), keys),
			Topks:            topks,
			OutputFields:     plan.names,
			PrimaryFieldName: c.pkField().Name,
		},
	}, nil
}

// annsField picks the vector field to search; it may be omitted when the
// schema has exactly one.
func (c *collection) annsField(name string) (int, error) {
	if name != "" {
		pos, f := c.field(name)
		if f == nil || !isVector(f.DataType) {
			return 0, errInvalid("failed to get field schema by name: fieldName(%s) not found or is not a vector field", name)
		}
		return pos, nil
	}
	found := -1
	for i, f := range c.schema.Fields {
		if isVector(f.DataType) {
			if found >= 0 {
				return 0, errInvalid("multiple anns_fields exist, please specify a anns_field in search_params")
			}
			found = i
		}
	}
	if found < 0 {
		return 0, errInvalid("no vector field found in collection %s", c.name)
	}
	return found, nil
}

// queryVectors decodes the placeholder group (float32 little-endian bytes,
// one value per query) or, for search-by-ID, looks the stored vectors up.
func (c *collection) queryVectors(req *milvuspb.SearchRequest, vf *schemapb.FieldSchema, vecPos int) ([][]float32, error) {
	dim := dimOf(vf)
	if ids := req.GetIds(); ids != nil {
		var keys []any
		if s := ids.GetStrId(); s != nil {
			keys = toAny(s.GetData())
		} else {
			keys = toAny(ids.GetIntId().GetData())
		}
		out := make([][]float32, 0, len(keys))
		for _, k := range keys {
			i, ok := c.byPK[k]
			if !ok || c.rows[i][vecPos] == nil {
				return nil, errInvalid("primary key %v to search by is not found", k)
			}
			out = append(out, c.rows[i][vecPos].([]float32))
		}
		return out, nil
	}
	var phg commonpb.PlaceholderGroup
	if err := proto.Unmarshal(req.GetPlaceholderGroup(), &phg); err != nil {
		return nil, errInvalid("failed to unmarshal placeholder group: %v", err)
	}
	if len(phg.GetPlaceholders()) != 1 {
		return nil, errInvalid("expected one placeholder, got %d", len(phg.GetPlaceholders()))
	}
	ph := phg.GetPlaceholders()[0]
	if ph.GetType() != commonpb.PlaceholderType_FloatVector {
		return nil, errInvalid("search data type %s does not match the float vector field %s", ph.GetType(), vf.Name)
	}
	if len(ph.GetValues()) == 0 {
		return nil, errInvalid("nq [0] is invalid, nq (number of search vector per search request) should be in range [1, %d]", maxResultWindow)
	}
	out := make([][]float32, 0, len(ph.GetValues()))
	for _, b := range ph.GetValues() {
		if len(b) != 4*dim {
			return nil, errMismatch("the dimension of the search vector does not match field "+vf.Name, dim, len(b)/4)
		}
		v := make([]float32, dim)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		out = append(out, v)
	}
	return out, nil
}
