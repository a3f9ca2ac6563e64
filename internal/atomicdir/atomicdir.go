// Package atomicdir writes a directory of files so that a reader sees the
// whole old version or the whole new one, never a mix: the files are
// written and fsynced in a temporary directory beside the target, which is
// then renamed into place (or exchanged with the target when it already
// exists). The certificate store and the trust store keep their entries
// this way.
package atomicdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Prefixes of the directories being built and being deleted. The leading
// dot keeps them out of listings that accept only well-formed names.
const (
	TmpPrefix     = ".tmp-"
	DeletedPrefix = ".deleted-"
)

// staleAfter: temporary directories older than this are litter from a
// crash (a live write takes milliseconds).
const staleAfter = time.Hour

// ErrExist is returned by Create when the target already exists.
var ErrExist = errors.New("already exists")

// File is one file of a directory.
type File struct {
	Name string
	Data []byte
	Mode os.FileMode
}

// Create makes parent/name holding files. It fails with ErrExist (wrapped)
// when parent/name exists: two creators of one name cannot both win.
func Create(parent, name string, files []File) error {
	tmp, err := build(parent, files)
	if err != nil {
		return err
	}
	dst := filepath.Join(parent, name)
	// rename(2) replaces an empty directory, so check first; the rename
	// below still fails on a non-empty one a racing creator put there.
	if _, err := os.Lstat(dst); err == nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("%s: %w", dst, ErrExist)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, errNotEmpty) {
			return fmt.Errorf("%s: %w", dst, ErrExist)
		}
		return fmt.Errorf("storing %s: %w", dst, err)
	}
	SyncDir(parent)
	return nil
}

// Replace makes parent/name hold files, in one step for readers: where the
// platform can (Linux renameat2 RENAME_EXCHANGE) the new directory and the
// old one swap names atomically, and the old one is then removed. The
// target must exist (fs.ErrNotExist otherwise).
func Replace(parent, name string, files []File) error {
	dst := filepath.Join(parent, name)
	if _, err := os.Lstat(dst); err != nil {
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	tmp, err := build(parent, files)
	if err != nil {
		return err
	}
	if err := exchange(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	SyncDir(parent)
	// tmp now holds the old version; readers that opened it before the
	// exchange may still be reading, which is why it goes last.
	_ = os.RemoveAll(tmp)
	return nil
}

// Remove deletes parent/name: it is renamed out of sight first, so a
// reader sees the whole entry or none.
func Remove(parent, name string) error {
	src := filepath.Join(parent, name)
	dst := filepath.Join(parent, DeletedPrefix+name+"-"+uuid.NewString())
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	SyncDir(parent)
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("%s removed, but deleting %s failed: %w", src, dst, err)
	}
	return nil
}

// Sweep removes temporary and deleted directories in parent left behind by
// crashes; only old ones, as a young one may be another process's write.
func Sweep(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), TmpPrefix) && !strings.HasPrefix(e.Name(), DeletedPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAfter {
			_ = os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}

// build writes files into a new temporary directory in parent (mode 0700)
// and returns its path.
func build(parent string, files []File) (_ string, err error) {
	tmp, err := os.MkdirTemp(parent, TmpPrefix)
	if err != nil {
		return "", fmt.Errorf("creating a temporary directory in %s: %w", parent, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	for _, f := range files {
		if err := writeFile(filepath.Join(tmp, f.Name), f.Data, f.Mode); err != nil {
			return "", err
		}
	}
	SyncDir(tmp)
	return tmp, nil
}

// writeFile creates path with mode (O_EXCL: never reuse a file whose mode
// someone else chose) and fsyncs it.
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	return nil
}

// SyncDir makes a rename durable. Failure is ignored: some file systems do
// not support fsync on directories, and the rename itself already happened.
func SyncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
