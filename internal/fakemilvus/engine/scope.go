package engine

import (
	"context"
	"sync"
)

// The helpers below are the preamble that the database- and collection-scoped
// handlers share: refuse while the replica is stopping, resolve the database
// like the proxy, take the engine lock (shared to read, exclusive to change),
// then find the database or collection. A failure anywhere is returned as an
// error, which the handler reports in the reply status.

// collectionRequest is any request that names a database and a collection.
type collectionRequest interface {
	GetDbName() string
	GetCollectionName() string
}

// viewCollection runs fn on the request's collection under the read lock.
func (s *server) viewCollection(ctx context.Context, req collectionRequest, fn func(*collection) error) error {
	return s.inCollection(ctx, req, s.e.mu.RLocker(), fn)
}

// updateCollection runs fn on the request's collection under the write lock.
func (s *server) updateCollection(ctx context.Context, req collectionRequest, fn func(*collection) error) error {
	return s.inCollection(ctx, req, &s.e.mu, fn)
}

func (s *server) inCollection(ctx context.Context, req collectionRequest, lock sync.Locker, fn func(*collection) error) error {
	if err := s.readiness(); err != nil {
		return err
	}
	return s.e.inCollection(lock, dbName(ctx, req.GetDbName()), req.GetCollectionName(), fn)
}

// viewDatabase runs fn on the database named by body (or the dbname header)
// under the read lock.
func (s *server) viewDatabase(ctx context.Context, body string, fn func(*database) error) error {
	return s.inDatabase(ctx, body, s.e.mu.RLocker(), fn)
}

// updateDatabase runs fn on the database named by body (or the dbname header)
// under the write lock.
func (s *server) updateDatabase(ctx context.Context, body string, fn func(*database) error) error {
	return s.inDatabase(ctx, body, &s.e.mu, fn)
}

func (s *server) inDatabase(ctx context.Context, body string, lock sync.Locker, fn func(*database) error) error {
	if err := s.readiness(); err != nil {
		return err
	}
	return s.e.inDatabase(lock, dbName(ctx, body), fn)
}

// inDatabase runs fn on a database while holding lock, one side of e.mu.
func (e *Engine) inDatabase(lock sync.Locker, db string, fn func(*database) error) error {
	lock.Lock()
	defer lock.Unlock()
	d, err := e.databaseLocked(db)
	if err != nil {
		return err
	}
	return fn(d)
}

// inCollection runs fn on a collection while holding lock, one side of e.mu.
func (e *Engine) inCollection(lock sync.Locker, db, name string, fn func(*collection) error) error {
	return e.inDatabase(lock, db, func(d *database) error {
		c, err := d.collection(name)
		if err != nil {
			return err
		}
		return fn(c)
	})
}
