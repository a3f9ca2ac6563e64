package engine

import (
	"context"
	"fmt"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// Loading is instantaneous; the loaded flag only gates Search and Query the
// way Milvus does (collection not loaded, code 101).

func (s *server) LoadCollection(ctx context.Context, req *milvuspb.LoadCollectionRequest) (*commonpb.Status, error) {
	return statusOf(s.updateCollection(ctx, req, (*collection).load)), nil
}

// load marks c loaded; Milvus refuses while a vector field has no index.
func (c *collection) load() error {
	for _, f := range c.schema.Fields {
		if isVector(f.DataType) && c.indexOnField(f.Name) == nil {
			return fmt.Errorf("load %s: field %s has no index: %w", c.name, f.Name, errIndexNotFoundForCollection(c.name))
		}
	}
	c.loaded = true
	return nil
}

func (s *server) ReleaseCollection(ctx context.Context, req *milvuspb.ReleaseCollectionRequest) (*commonpb.Status, error) {
	return statusOf(s.updateCollection(ctx, req, func(c *collection) error {
		c.loaded = false
		return nil
	})), nil
}

func (s *server) GetLoadState(ctx context.Context, req *milvuspb.GetLoadStateRequest) (*milvuspb.GetLoadStateResponse, error) {
	resp := &milvuspb.GetLoadStateResponse{}
	err := s.viewPartitions(ctx, req, func(c *collection) error {
		resp.State = commonpb.LoadState_LoadStateNotLoad
		if c.loaded {
			resp.State = commonpb.LoadState_LoadStateLoaded
		}
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}

func (s *server) GetLoadingProgress(ctx context.Context, req *milvuspb.GetLoadingProgressRequest) (*milvuspb.GetLoadingProgressResponse, error) {
	resp := &milvuspb.GetLoadingProgressResponse{}
	err := s.viewPartitions(ctx, req, func(c *collection) error {
		if !c.loaded {
			return errCollectionNotLoaded(c.name)
		}
		resp.Progress, resp.RefreshProgress = 100, 100
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}

// partitionsRequest is a collection request that may also name partitions.
type partitionsRequest interface {
	collectionRequest
	GetPartitionNames() []string
}

// viewPartitions is viewCollection for the load-progress calls, which also
// fail when a named partition does not exist (only _default does).
func (s *server) viewPartitions(ctx context.Context, req partitionsRequest, fn func(*collection) error) error {
	return s.viewCollection(ctx, req, func(c *collection) error {
		if err := checkPartitions(req.GetPartitionNames()); err != nil {
			return err
		}
		return fn(c)
	})
}

func checkPartitions(names []string) error {
	for _, p := range names {
		if !isPartitionOK(p) {
			return errPartitionNotFound(p)
		}
	}
	return nil
}

// Flush has nothing to persist; it answers with a flush timestamp so the
// SDK's FlushTask can poll GetFlushState, which always reports flushed.
func (s *server) Flush(ctx context.Context, req *milvuspb.FlushRequest) (*milvuspb.FlushResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.FlushResponse{Status: st}, nil
	}
	db := dbName(ctx, req.GetDbName())
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	resp := &milvuspb.FlushResponse{
		Status:          okStatus(),
		DbName:          db,
		CollSegIDs:      map[string]*schemapb.LongArray{},
		FlushCollSegIDs: map[string]*schemapb.LongArray{},
		CollSealTimes:   map[string]int64{},
		CollFlushTs:     map[string]uint64{},
	}
	ts := s.e.clock.next()
	for _, name := range req.GetCollectionNames() {
		if _, err := s.e.collectionLocked(db, name); err != nil {
			return &milvuspb.FlushResponse{Status: statusOf(err)}, nil
		}
		resp.CollSegIDs[name] = &schemapb.LongArray{}
		resp.FlushCollSegIDs[name] = &schemapb.LongArray{}
		resp.CollSealTimes[name] = int64(physicalMillis(ts) / 1000)
		resp.CollFlushTs[name] = ts
	}
	return resp, nil
}

func (s *server) GetFlushState(ctx context.Context, req *milvuspb.GetFlushStateRequest) (*milvuspb.GetFlushStateResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.GetFlushStateResponse{Status: st}, nil
	}
	return &milvuspb.GetFlushStateResponse{Status: okStatus(), Flushed: true}, nil
}
