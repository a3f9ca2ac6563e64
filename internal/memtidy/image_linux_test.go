//go:build linux

package memtidy

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMappingOf(t *testing.T) {
	const exe = "/usr/local/bin/l7lb"
	tests := []struct {
		name  string
		line  string
		ok    bool
		start uintptr
		end   uintptr
	}{
		{"code", "00400000-0187a000 r-xp 00000000 fe:00 9994773    /usr/local/bin/l7lb", true, 0x400000, 0x187a000},
		{"read-only data", "0187a000-02ed5000 r--p 0147a000 fe:00 9994773 /usr/local/bin/l7lb", true, 0x187a000, 0x2ed5000},
		{"writable data is kept", "02ed5000-02f8d000 rw-p 02ad5000 fe:00 9994773 /usr/local/bin/l7lb", false, 0, 0},
		{"shared mapping is kept", "02ed5000-02f8d000 r--s 02ad5000 fe:00 9994773 /usr/local/bin/l7lb", false, 0, 0},
		{"another file", "7fef9d0b2000-7fef9d208000 r-xp 00026000 fe:00 326269 /usr/lib/x86_64-linux-gnu/libc.so.6", false, 0, 0},
		{"anonymous", "24da6a000000-24da6b000000 rw-p 00000000 00:00 0", false, 0, 0},
		{"a path that only starts the same", "00400000-0187a000 r-xp 00000000 fe:00 1 /usr/local/bin/l7lb.old", false, 0, 0},
		{"malformed range", "zz-0187a000 r-xp 00000000 fe:00 9994773 /usr/local/bin/l7lb", false, 0, 0},
		{"empty range", "0187a000-0187a000 r-xp 00000000 fe:00 9994773 /usr/local/bin/l7lb", false, 0, 0},
		{"short line", "00400000-0187a000 r-xp", false, 0, 0},
	}
	for _, tc := range tests {
		start, end, ok := readOnlyMappingOf(tc.line, exe)
		if ok != tc.ok || start != tc.start || end != tc.end {
			t.Errorf("%s: got %#x-%#x %v, want %#x-%#x %v", tc.name, start, end, ok, tc.start, tc.end, tc.ok)
		}
	}
	// A path with a space is one path.
	if _, _, ok := readOnlyMappingOf("00400000-0187a000 r-xp 00000000 fe:00 1 /opt/my dir/l7lb", "/opt/my dir/l7lb"); !ok {
		t.Error("a path with a space was not matched")
	}
}

// rssFile is the process's resident file-backed memory, from
// /proc/self/status.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("RssFile %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// kept is written before the release and read after it: writable data
// of the executable must keep its changes.
var kept = []int{1, 2, 3}

// Releasing the image drops resident file pages, loses nothing the
// process wrote, and the code it then runs faults back in.
func TestReleaseImage(t *testing.T) {
	kept[1] = 42
	before := rssFile(t)
	covered, err := ReleaseImage()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	if covered == 0 {
		t.Fatal("no mapping of the executable was covered")
	}
	if after >= before {
		t.Fatalf("resident file pages %d KiB before, %d KiB after: nothing released", before>>10, after>>10)
	}
	t.Logf("covered %d MiB of mappings; resident file pages %d → %d KiB", covered>>20, before>>10, after>>10)
	if kept[1] != 42 {
		t.Fatalf("writable data lost its change: %v", kept)
	}
	// Code that ran before runs again (its pages fault back in).
	if got := strconv.Itoa(12345) + strings.Repeat("x", 2); got != "12345xx" {
		t.Fatalf("after the release: %q", got)
	}
}
