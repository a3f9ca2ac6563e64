// Package memtidy gives memory back to the system when l7lb goes quiet
// after a burst.
//
// The collector lets the heap grow to twice what is live (GOGC=100, plus
// the GC ballast) before it collects, and keeps freed pages for reuse.
// Under steady traffic that is the right trade: memory for CPU. But a
// burst that leaves little behind — ten thousand clients connecting
// (each TLS handshake leaves tens of kilobytes of garbage), then sitting
// idle — leaves the process holding about twice its live heap for as
// long as it stays quiet, since a quiet process allocates nothing that
// would make the collector run. A balancer in front of an idle fleet
// should cost what its connections need.
//
// So: once a second, if the process allocated little in the last second
// (it is quiet), while much was allocated since the last tidy-up (there
// was a burst), collect and return the free memory to the system
// (debug.FreeOSMemory), and drop the executable's read-only pages from
// the page tables (ReleaseImage: serving faults back the few it runs).
// Under load nothing happens; at most one tidy-up every MinInterval.
// serve also releases the image once when it is up, since start-up
// touches most of the binary and serving little of it.
package memtidy

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Policy thresholds.
const (
	// Tick is how often the allocation rate is looked at.
	Tick = time.Second
	// QuietBytes: allocating less than this in a tick is quiet (about a
	// hundred small RPCs).
	QuietBytes = 1 << 20
	// BurstBytes: allocating more than this since the last tidy-up is a
	// burst worth tidying after.
	BurstBytes = 32 << 20
	// MinInterval bounds how often the process is tidied (each is one
	// full collection).
	MinInterval = 10 * time.Second
)

// Run tidies until ctx ends. tidied, when not nil, hears each tidy-up.
func Run(ctx context.Context, tidied func()) {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	t := time.NewTicker(Tick)
	defer t.Stop()
	last := read()
	sinceTidy := uint64(0)
	var lastTidy time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur := read()
			d := cur - last
			last = cur
			sinceTidy += d
			if Decide(d, sinceTidy, now.Sub(lastTidy)) {
				debug.FreeOSMemory()
				// The burst's code (ten thousand handshakes run code a
				// quiet balancer does not) can go too; an error here
				// only means the pages stay.
				_, _ = ReleaseImage()
				sinceTidy, lastTidy = 0, time.Now()
				last = read()
				if tidied != nil {
					tidied()
				}
			}
		}
	}
}

// Decide is the policy: tidy when the last tick was quiet, a burst
// happened since the last tidy-up, and the last one is old enough.
func Decide(tickBytes, sinceTidyBytes uint64, sinceTidy time.Duration) bool {
	return tickBytes < QuietBytes && sinceTidyBytes > BurstBytes && sinceTidy >= MinInterval
}
