//go:build !linux

package atomicdir

import "syscall"

var errNotEmpty = syscall.ENOTEMPTY

// exchange swaps the names of two directories; without renameat2 it takes
// two renames, and a reader in between finds the target missing (readers
// retry once: see the stores' Load).
func exchange(a, b string) error { return exchangeByRenames(a, b) }
