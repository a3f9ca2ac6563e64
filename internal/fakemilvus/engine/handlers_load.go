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
	// Milvus refuses to load while a vector field has no index.
	for _, f := range c.schema.Fields {
		if isVector(f.DataType) && c.indexOnField(f.Name) == nil {
			return statusOf(fmt.Errorf("load %s: field %s has no index: %w", c.name, f.Name, errIndexNotFoundForCollection(c.name))), nil
		}
	}
	c.loaded = true
	return okStatus(), nil
}

func (s *server) ReleaseCollection(ctx context.Context, req *milvuspb.ReleaseCollectionRequest) (*commonpb.Status, error) {
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
	c.loaded = false
	return okStatus(), nil
}

func (s *server) GetLoadState(ctx context.Context, req *milvuspb.GetLoadStateRequest) (*milvuspb.GetLoadStateResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.GetLoadStateResponse{Status: st}, nil
	}
	db := dbName(ctx, req.GetDbName())
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	c, err := s.e.collectionLocked(db, req.GetCollectionName())
	if err != nil {
		return &milvuspb.GetLoadStateResponse{Status: statusOf(err)}, nil
	}
	if err := checkPartitions(req.GetPartitionNames()); err != nil {
		return &milvuspb.GetLoadStateResponse{Status: statusOf(err)}, nil
	}
	state := commonpb.LoadState_LoadStateNotLoad
	if c.loaded {
		state = commonpb.LoadState_LoadStateLoaded
	}
	return &milvuspb.GetLoadStateResponse{Status: okStatus(), State: state}, nil
}

func (s *server) GetLoadingProgress(ctx context.Context, req *milvuspb.GetLoadingProgressRequest) (*milvuspb.GetLoadingProgressResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.GetLoadingProgressResponse{Status: st}, nil
	}
	db := dbName(ctx, req.GetDbName())
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	c, err := s.e.collectionLocked(db, req.GetCollectionName())
	if err != nil {
		return &milvuspb.GetLoadingProgressResponse{Status: statusOf(err)}, nil
	}
	if err := checkPartitions(req.GetPartitionNames()); err != nil {
		return &milvuspb.GetLoadingProgressResponse{Status: statusOf(err)}, nil
	}
	if !c.loaded {
		return &milvuspb.GetLoadingProgressResponse{Status: statusOf(errCollectionNotLoaded(c.name))}, nil
	}
	return &milvuspb.GetLoadingProgressResponse{Status: okStatus(), Progress: 100, RefreshProgress: 100}, nil
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
