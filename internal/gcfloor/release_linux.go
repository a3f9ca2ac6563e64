package gcfloor

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// release drops the physical pages behind b's whole pages. The memory is
// private and anonymous (Go's heap), so the pages read as zeros if ever
// touched again, which is what b holds.
func release(b []byte) {
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := start + uintptr(len(b))
	first := (start + page - 1) &^ (page - 1)
	last := end &^ (page - 1)
	if last <= first {
		return
	}
	// An error leaves the pages resident: more memory, never wrong.
	_ = unix.Madvise(b[first-start:last-start], unix.MADV_DONTNEED)
}
