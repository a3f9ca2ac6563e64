package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

func (s *server) CreateCollection(ctx context.Context, req *milvuspb.CreateCollectionRequest) (*commonpb.Status, error) {
	if st := s.notReady(); st != nil {
		return st, nil
	}
	return statusOf(s.e.createCollection(dbName(ctx, req.GetDbName()), req)), nil
}

func (e *Engine) createCollection(db string, req *milvuspb.CreateCollectionRequest) error {
	name := req.GetCollectionName()
	if err := validateName(name); err != nil {
		return err
	}
	schema, requested, pkPos, err := buildSchema(name, req.GetSchema())
	if err != nil {
		return fmt.Errorf("create collection %s.%s: %w", db, name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.dbs[db]
	if !ok {
		return errDatabaseNotFound(db)
	}
	if old, ok := d.collections[name]; ok {
		// Milvus treats an identical re-create as success.
		if proto.Equal(old.requested, requested) {
			return nil
		}
		return errInvalid("create duplicate collection with different parameters, collection: %s", name)
	}
	shards := req.GetShardsNum()
	if shards <= 0 {
		shards = 1
	}
	ts := e.clock.next()
	c := &collection{
		id:          int64(ts),
		name:        name,
		schema:      schema,
		requested:   requested,
		pkPos:       pkPos,
		dynPos:      -1,
		consistency: req.GetConsistencyLevel(),
		shards:      shards,
		properties:  req.GetProperties(),
		createdTs:   ts,
		updateTs:    ts,
		byPK:        make(map[any]int),
	}
	for i, f := range schema.Fields {
		if f.IsDynamic {
			c.dynPos = i
		}
	}
	d.collections[name] = c
	return nil
}

// validateName applies Milvus's collection-name rule: a letter or underscore,
// then letters, digits and underscores, at most 255 bytes.
func validateName(name string) error {
	if name == "" {
		return errInvalid("collection name should not be empty")
	}
	if len(name) > 255 {
		return errInvalid("the length of a collection name must be less than 255 characters")
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		letter := ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z'
		if i == 0 && !letter || i > 0 && !letter && !(ch >= '0' && ch <= '9') {
			return errInvalid("collection name %s can only contain numbers, letters and underscores, and must start with a letter or underscore", name)
		}
	}
	return nil
}

func (s *server) DescribeCollection(ctx context.Context, req *milvuspb.DescribeCollectionRequest) (*milvuspb.DescribeCollectionResponse, error) {
	var resp *milvuspb.DescribeCollectionResponse
	err := s.viewDatabase(ctx, req.GetDbName(), func(d *database) error {
		c, err := d.collectionToDescribe(req)
		if err != nil {
			return err
		}
		resp = c.describe(d)
		return nil
	})
	if err != nil {
		return &milvuspb.DescribeCollectionResponse{Status: statusOf(err)}, nil
	}
	return resp, nil
}

// collectionToDescribe picks the collection by name or, when the request
// carries only an ID, by ID.
func (d *database) collectionToDescribe(req *milvuspb.DescribeCollectionRequest) (*collection, error) {
	if req.GetCollectionName() == "" && req.GetCollectionID() != 0 {
		return d.collectionByID(req.GetCollectionID())
	}
	return d.collection(req.GetCollectionName())
}

// describe is the DescribeCollection reply for c, a collection of d.
func (c *collection) describe(d *database) *milvuspb.DescribeCollectionResponse {
	vch := make([]string, c.shards)
	pch := make([]string, c.shards)
	for i := range vch {
		pch[i] = "by-dev-rootcoord-dml_" + strconv.Itoa(i)
		vch[i] = fmt.Sprintf("%s_%dv%d", pch[i], c.id, i)
	}
	return &milvuspb.DescribeCollectionResponse{
		Status:               okStatus(),
		Schema:               proto.Clone(c.schema).(*schemapb.CollectionSchema),
		CollectionID:         c.id,
		VirtualChannelNames:  vch,
		PhysicalChannelNames: pch,
		CreatedTimestamp:     c.createdTs,
		CreatedUtcTimestamp:  physicalMillis(c.createdTs),
		ShardsNum:            c.shards,
		ConsistencyLevel:     c.consistency,
		CollectionName:       c.name,
		Properties:           c.properties,
		DbName:               d.name,
		NumPartitions:        1,
		DbId:                 d.id,
		UpdateTimestamp:      c.updateTs,
		UpdateTimestampStr:   strconv.FormatUint(c.updateTs, 10),
	}
}

func (s *server) HasCollection(ctx context.Context, req *milvuspb.HasCollectionRequest) (*milvuspb.BoolResponse, error) {
	resp := &milvuspb.BoolResponse{}
	err := s.viewDatabase(ctx, req.GetDbName(), func(d *database) error {
		_, resp.Value = d.collections[req.GetCollectionName()]
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}

func (s *server) ShowCollections(ctx context.Context, req *milvuspb.ShowCollectionsRequest) (*milvuspb.ShowCollectionsResponse, error) {
	resp := &milvuspb.ShowCollectionsResponse{}
	err := s.viewDatabase(ctx, req.GetDbName(), func(d *database) error {
		cols, err := d.showCollections(req)
		if err != nil {
			return err
		}
		for _, c := range cols {
			pct := int64(0)
			if c.loaded {
				pct = 100
			}
			resp.CollectionNames = append(resp.CollectionNames, c.name)
			resp.CollectionIds = append(resp.CollectionIds, c.id)
			resp.CreatedTimestamps = append(resp.CreatedTimestamps, c.createdTs)
			resp.CreatedUtcTimestamps = append(resp.CreatedUtcTimestamps, physicalMillis(c.createdTs))
			resp.InMemoryPercentages = append(resp.InMemoryPercentages, pct) //nolint:staticcheck // still read by older SDKs
			resp.QueryServiceAvailable = append(resp.QueryServiceAvailable, c.loaded)
		}
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}

// showCollections selects the collections ShowCollections lists, by name:
// the named ones (each must exist) or all, only the loaded ones for InMemory.
func (d *database) showCollections(req *milvuspb.ShowCollectionsRequest) ([]*collection, error) {
	var wanted map[string]bool
	if names := req.GetCollectionNames(); len(names) > 0 {
		wanted = make(map[string]bool, len(names))
		for _, n := range names {
			if _, ok := d.collections[n]; !ok {
				return nil, errCollectionNotFound(n)
			}
			wanted[n] = true
		}
	}
	cols := make([]*collection, 0, len(d.collections))
	for _, c := range d.collections {
		if wanted != nil && !wanted[c.name] {
			continue
		}
		if req.GetType() == milvuspb.ShowType_InMemory && !c.loaded {
			continue
		}
		cols = append(cols, c)
	}
	sort.Slice(cols, func(i, j int) bool { return cols[i].name < cols[j].name })
	return cols, nil
}

func (s *server) DropCollection(ctx context.Context, req *milvuspb.DropCollectionRequest) (*commonpb.Status, error) {
	return statusOf(s.updateDatabase(ctx, req.GetDbName(), func(d *database) error {
		// Dropping a missing collection succeeds in Milvus (idempotent DDL).
		delete(d.collections, req.GetCollectionName())
		return nil
	})), nil
}

func (s *server) GetCollectionStatistics(ctx context.Context, req *milvuspb.GetCollectionStatisticsRequest) (*milvuspb.GetCollectionStatisticsResponse, error) {
	resp := &milvuspb.GetCollectionStatisticsResponse{}
	err := s.viewCollection(ctx, req, func(c *collection) error {
		resp.Stats = []*commonpb.KeyValuePair{{Key: "row_count", Value: strconv.Itoa(len(c.rows))}}
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}
