// Package engine is an in-memory, Milvus-compatible implementation of
// milvuspb.MilvusServiceServer. It is a test double for the load balancer:
// several replica gRPC servers share one Engine, the way several Milvus
// proxies share one cluster, so a write through one replica is visible
// through every other. Nothing is persisted.
package engine

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
)

const (
	defaultDB = "default"
	// serverVersion is what GetVersion and Connect report. SDKs only log it.
	serverVersion = "v2.6.6"
	// defaultPartition is the one partition every collection has.
	defaultPartition = "_default"
)

// Engine is the shared, in-memory cluster state. It is safe for concurrent use.
type Engine struct {
	clock clock

	mu  sync.RWMutex
	dbs map[string]*database
}

// New returns an Engine holding only the "default" database.
func New() *Engine {
	e := &Engine{dbs: make(map[string]*database)}
	ts := e.clock.next()
	e.dbs[defaultDB] = &database{name: defaultDB, id: 1, createdTs: ts, collections: make(map[string]*collection)}
	return e
}

// ServerOptions configure one replica's view of the Engine.
type ServerOptions struct {
	// NotReady, when it returns true, makes every method answer with an
	// in-body status ServiceNotReady (merr code 1, legacy error_code
	// NotReadyServe=56, retriable=true, reason "service not ready") and gRPC
	// OK, like a stopping Milvus proxy. Nothing is executed then.
	NotReady func() bool
}

// Server returns a per-replica MilvusServiceServer backed by the shared store.
func (e *Engine) Server(opts ServerOptions) milvuspb.MilvusServiceServer {
	return &server{e: e, opts: opts}
}

// RowCount reports the number of live rows in a collection, or 0 when the
// database or collection does not exist. It is meant for tests.
func (e *Engine) RowCount(db, name string) int {
	n := 0
	_ = e.inCollection(e.mu.RLocker(), db, name, func(c *collection) error {
		n = len(c.rows)
		return nil
	})
	return n
}

// RowsWritten reports how many rows inserts and upserts have written to a
// collection, counting every write of the same primary key: above
// RowCount (with no deletes) means a key was written twice. It is meant
// for tests.
func (e *Engine) RowsWritten(db, name string) int {
	n := 0
	_ = e.inCollection(e.mu.RLocker(), db, name, func(c *collection) error {
		n = c.written
		return nil
	})
	return n
}

// server is one replica. Unimplemented methods fall through to the embedded
// UnimplementedMilvusServiceServer and answer gRPC UNIMPLEMENTED.
type server struct {
	milvuspb.UnimplementedMilvusServiceServer
	e    *Engine
	opts ServerOptions
}

// notReady returns the ServiceNotReady status when this replica is stopping,
// nil otherwise. Every implemented handler checks it before doing anything.
func (s *server) notReady() *commonpb.Status {
	if err := s.readiness(); err != nil {
		return statusOf(err)
	}
	return nil
}

// readiness is notReady as an error, for handlers that report one status at
// the end.
func (s *server) readiness() error {
	if s.opts.NotReady != nil && s.opts.NotReady() {
		return errServiceNotReady()
	}
	return nil
}

// dbName resolves the database like the Milvus DatabaseInterceptor: the body
// field wins, then the "dbname" metadata header, then "default".
func dbName(ctx context.Context, body string) string {
	if body != "" {
		return body
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("dbname"); len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return defaultDB
}

// clock hands out hybrid timestamps (physical ms << 18 | logical), strictly
// increasing, like the Milvus TSO. They double as unique IDs.
type clock struct {
	mu   sync.Mutex
	last uint64
}

const logicalBits = 18

func (c *clock) next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := uint64(time.Now().UnixMilli()) << logicalBits
	if ts <= c.last {
		ts = c.last + 1
	}
	c.last = ts
	return ts
}

// physicalMillis extracts the wall-clock part of a hybrid timestamp.
func physicalMillis(ts uint64) uint64 { return ts >> logicalBits }
