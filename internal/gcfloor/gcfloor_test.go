package gcfloor

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// rssKiB is this process's resident memory.
func rssKiB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// The ballast counts as live heap (the collector's goal moves up by about
// twice its size) but costs no resident memory, even where the runtime
// clears the allocation (run it with -count=20: the runtime reuses the
// spans the previous run freed).
func TestBallastRaisesTheGoalNotTheRSS(t *testing.T) {
	defer Set(0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rss := rssKiB(t)

	const size = 256 << 20
	Set(size)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := Size(); got != size {
		t.Fatalf("Size() = %d, want %d", got, size)
	}
	if after.NextGC < before.NextGC+size {
		t.Fatalf("heap goal %d MiB with the ballast, was %d MiB: want it up by at least %d MiB",
			after.NextGC>>20, before.NextGC>>20, size>>20)
	}
	if grown := rssKiB(t) - rss; grown > 64<<10 {
		t.Fatalf("resident memory grew by %d MiB for a %d MiB ballast: it was touched", grown>>10, size>>20)
	}

	Set(0)
	runtime.GC()
	var dropped runtime.MemStats
	runtime.ReadMemStats(&dropped)
	if dropped.NextGC >= after.NextGC {
		t.Fatalf("heap goal %d MiB after dropping the ballast, want below %d MiB", dropped.NextGC>>20, after.NextGC>>20)
	}
}
