//go:build !linux

package gcfloor

// release is Linux's madvise only; elsewhere the ballast stays as the
// runtime left it.
func release([]byte) {}
