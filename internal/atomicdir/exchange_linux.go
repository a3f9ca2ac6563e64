package atomicdir

import (
	"errors"

	"golang.org/x/sys/unix"
)

var errNotEmpty = unix.ENOTEMPTY

// exchange swaps the names of two directories atomically.
func exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		// A file system without RENAME_EXCHANGE (some FUSE and network
		// ones): fall back to two renames, with a short gap.
		return exchangeByRenames(a, b)
	}
	return err
}
