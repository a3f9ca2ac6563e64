// Package gcfloor keeps the garbage collector from running every few
// megabytes when l7lb's live heap is small.
//
// With GOGC=100 the collector runs each time the heap doubles. A proxy's
// live heap is a few megabytes (connection and stream state), while every
// request allocates a little, so at 20 000 requests a second the collector
// ran five times a second (GODEBUG=gctrace=1 under bench/, workload a),
// and each cycle slows the requests it overlaps (mark assists, the
// background worker's share of a P).
//
// A ballast raises the floor: one large allocation without pointers,
// which the collector counts as live but never scans, and which the
// process never touches, so the kernel never gives it memory. The heap
// goal becomes 2 × (live + ballast): at a small live heap the collector
// runs about ballast/live times less often, and at a large one the extra
// garbage allowed stays bounded by the ballast (raising GOGC instead would
// multiply a live heap that suddenly grows, as a burst of 64 MiB messages
// makes it do).
package gcfloor

import (
	"runtime"
	"sync"
)

var (
	mu      sync.Mutex
	ballast []byte
)

// Set keeps a ballast of n bytes (0 drops it).
func Set(n int) {
	mu.Lock()
	defer mu.Unlock()
	if n <= 0 {
		ballast = nil
		return
	}
	if len(ballast) != n {
		ballast = make([]byte, n)
		// Pages fresh from the OS come zeroed and stay untouched, but
		// the runtime clears the whole allocation when part of it lies
		// where the heap has been before (a test saw the full 256 MiB
		// become resident in about one run of five). Give the pages
		// back: nothing reads or writes the ballast, so the kernel
		// never has to bring them back.
		release(ballast)
	}
}

// Size reports the ballast's size.
func Size() int {
	mu.Lock()
	defer mu.Unlock()
	runtime.KeepAlive(ballast)
	return len(ballast)
}
