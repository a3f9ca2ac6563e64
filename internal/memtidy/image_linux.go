//go:build linux

package memtidy

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseImage drops the executable's read-only pages (code and
// read-only data) from the process's page tables, and reports how many
// bytes of mappings it covered.
//
// Start-up touches far more of the binary than serving does: every
// package's init (client-go's schemes, protobuf's registries), flag and
// config parsing, certificate loading; and each page fault maps its
// neighbours too (the kernel's fault-around). On a 45 MB binary that is
// about 28 MiB of file pages resident before the first client, against
// about 6 MiB of heap and stacks. The pages stay in the page cache; the
// ones serving needs fault back in at a minor fault each, the first time
// they run, and the rest stay out until something needs them.
//
// Only mappings of the executable that are not writable are touched:
// dropping a private writable mapping would lose its changes, dropping a
// read-only one loses nothing.
func ReleaseImage() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("memtidy: finding the executable: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("memtidy: reading the mappings: %w", err)
	}
	defer f.Close()
	var released int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		start, end, ok := readOnlyMappingOf(sc.Text(), exe)
		if !ok {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_RANDOM); errno != 0 {
			return released, fmt.Errorf("memtidy: madvise %#x-%#x: %w", start, end, errno)
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("memtidy: madvise %#x-%#x: %w", start, end, errno)
		}
		released += int64(end - start)
	}
	if err := sc.Err(); err != nil {
		return released, fmt.Errorf("memtidy: reading the mappings: %w", err)
	}
	return released, nil
}

// readOnlyMappingOf parses one line of /proc/self/maps ("start-end perms
// offset dev inode path") and reports the range when it maps path and is
// private and not writable.
func readOnlyMappingOf(line, path string) (start, end uintptr, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 6 || strings.Join(fields[5:], " ") != path {
		return 0, 0, false
	}
	perms := fields[1]
	if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
		return 0, 0, false
	}
	lo, hi, found := strings.Cut(fields[0], "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(lo, 16, 64)
	e, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}
