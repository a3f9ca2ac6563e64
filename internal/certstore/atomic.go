package certstore

import (
	"fmt"

	"github.com/l7lb/l7lb/internal/atomicdir"
)

// tmpPrefix starts the names of directories being built. The leading dot
// keeps them out of List, which only accepts UUID names anyway.
const tmpPrefix = atomicdir.TmpPrefix

type file = atomicdir.File

// writeDir creates <dir>/<name> holding files, atomically (atomicdir):
// on any error the store is unchanged.
func (s *Store) writeDir(name string, files []file) error {
	if err := atomicdir.Create(s.dir, name, files); err != nil {
		return fmt.Errorf("certstore: %w", err)
	}
	return nil
}

// replaceDir makes <dir>/<name> hold files instead of what it held, in
// one step for readers (atomicdir.Replace).
func (s *Store) replaceDir(name string, files []file) error {
	if err := atomicdir.Replace(s.dir, name, files); err != nil {
		return fmt.Errorf("certstore: %w", err)
	}
	return nil
}

// syncDir makes a rename durable (see atomicdir).
func syncDir(dir string) { atomicdir.SyncDir(dir) }
