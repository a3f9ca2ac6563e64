package engine

import (
	"context"
	"runtime"
	"sort"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
)

// Connect registers nothing (identifiers carry no affinity in Milvus) but,
// like the proxy, rejects an unknown database named by the dbname header and
// hands out a fresh TSO as identifier.
func (s *server) Connect(ctx context.Context, req *milvuspb.ConnectRequest) (*milvuspb.ConnectResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.ConnectResponse{Status: st}, nil
	}
	db := dbName(ctx, "")
	s.e.mu.RLock()
	_, ok := s.e.dbs[db]
	s.e.mu.RUnlock()
	if !ok {
		return &milvuspb.ConnectResponse{Status: statusOf(errDatabaseNotFound(db))}, nil
	}
	return &milvuspb.ConnectResponse{
		Status: okStatus(),
		ServerInfo: &commonpb.ServerInfo{
			BuildTags:  serverVersion,
			GoVersion:  runtime.Version(),
			DeployMode: "CLUSTER",
			Reserved:   map[string]string{"engine": "fakemilvus"},
		},
		Identifier: int64(s.e.clock.next()),
	}, nil
}

func (s *server) GetVersion(ctx context.Context, req *milvuspb.GetVersionRequest) (*milvuspb.GetVersionResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.GetVersionResponse{Status: st}, nil
	}
	return &milvuspb.GetVersionResponse{Status: okStatus(), Version: serverVersion}, nil
}

func (s *server) CheckHealth(ctx context.Context, req *milvuspb.CheckHealthRequest) (*milvuspb.CheckHealthResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.CheckHealthResponse{Status: st, IsHealthy: false, Reasons: []string{st.Reason}}, nil
	}
	return &milvuspb.CheckHealthResponse{Status: okStatus(), IsHealthy: true}, nil
}

func (s *server) GetComponentStates(ctx context.Context, req *milvuspb.GetComponentStatesRequest) (*milvuspb.ComponentStates, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.ComponentStates{
			Status: st,
			State:  &milvuspb.ComponentInfo{Role: "Proxy", StateCode: commonpb.StateCode_Stopping},
		}, nil
	}
	return &milvuspb.ComponentStates{
		Status: okStatus(),
		State:  &milvuspb.ComponentInfo{Role: "Proxy", StateCode: commonpb.StateCode_Healthy},
	}, nil
}

func (s *server) CreateDatabase(ctx context.Context, req *milvuspb.CreateDatabaseRequest) (*commonpb.Status, error) {
	if st := s.notReady(); st != nil {
		return st, nil
	}
	name := req.GetDbName()
	if name == "" {
		return statusOf(errInvalid("database name should not be empty")), nil
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if _, ok := s.e.dbs[name]; ok {
		return statusOf(errInvalid("database already exist: %s", name)), nil
	}
	ts := s.e.clock.next()
	s.e.dbs[name] = &database{name: name, id: int64(ts), createdTs: ts, collections: make(map[string]*collection)}
	return okStatus(), nil
}

func (s *server) DropDatabase(ctx context.Context, req *milvuspb.DropDatabaseRequest) (*commonpb.Status, error) {
	if st := s.notReady(); st != nil {
		return st, nil
	}
	name := req.GetDbName()
	if name == defaultDB {
		return statusOf(errInvalid("can not drop default database")), nil
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	d, ok := s.e.dbs[name]
	if !ok {
		return okStatus(), nil // dropping a missing database is a no-op in Milvus
	}
	if len(d.collections) > 0 {
		return statusOf(errInvalid("database:%s not empty, must drop all collections before drop database", name)), nil
	}
	delete(s.e.dbs, name)
	return okStatus(), nil
}

func (s *server) ListDatabases(ctx context.Context, req *milvuspb.ListDatabasesRequest) (*milvuspb.ListDatabasesResponse, error) {
	if st := s.notReady(); st != nil {
		return &milvuspb.ListDatabasesResponse{Status: st}, nil
	}
	s.e.mu.RLock()
	defer s.e.mu.RUnlock()
	dbs := make([]*database, 0, len(s.e.dbs))
	for _, d := range s.e.dbs {
		dbs = append(dbs, d)
	}
	sort.Slice(dbs, func(i, j int) bool { return dbs[i].createdTs < dbs[j].createdTs })
	resp := &milvuspb.ListDatabasesResponse{Status: okStatus()}
	for _, d := range dbs {
		resp.DbNames = append(resp.DbNames, d.name)
		resp.DbIds = append(resp.DbIds, d.id)
		resp.CreatedTimestamp = append(resp.CreatedTimestamp, d.createdTs)
	}
	return resp, nil
}

func (s *server) DescribeDatabase(ctx context.Context, req *milvuspb.DescribeDatabaseRequest) (*milvuspb.DescribeDatabaseResponse, error) {
	resp := &milvuspb.DescribeDatabaseResponse{}
	err := s.viewDatabase(ctx, req.GetDbName(), func(d *database) error {
		resp.DbName, resp.DbID, resp.CreatedTimestamp = d.name, d.id, d.createdTs
		return nil
	})
	resp.Status = statusOf(err)
	return resp, nil
}
