package certstore

import (
	"fmt"
	"os"
	"path/filepath"
)

// tmpPrefix starts the names of directories being built. The leading dot
// keeps them out of List, which only accepts UUID names anyway.
const tmpPrefix = ".tmp-"

type file struct {
	name string
	data []byte
	mode os.FileMode
}

// writeDir creates <dir>/<name> holding files, atomically: the files are
// written and fsynced in a temporary directory which is then renamed into
// place. On any error the temporary directory is removed and the store is
// unchanged.
func (s *Store) writeDir(name string, files []file) (err error) {
	tmp, err := os.MkdirTemp(s.dir, tmpPrefix) // mode 0700
	if err != nil {
		return fmt.Errorf("certstore: creating temporary directory in %s: %w", s.dir, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	for _, f := range files {
		if err := writeFile(filepath.Join(tmp, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	syncDir(tmp)
	// The name is a fresh UUID, so the rename never replaces anything.
	if err := os.Rename(tmp, filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("certstore: storing %s: %w", name, err)
	}
	syncDir(s.dir)
	return nil
}

// writeFile creates path with mode (O_EXCL: never reuse a file whose mode
// someone else chose) and fsyncs it.
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("certstore: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certstore: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("certstore: syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certstore: closing %s: %w", path, err)
	}
	return nil
}

// syncDir makes a rename durable. Failure is ignored: some file systems do
// not support fsync on directories, and the rename itself already happened.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
