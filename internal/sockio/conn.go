// Package sockio gives l7lb's TCP connections reads and writes that do
// not go through the Go scheduler's system-call hand-off.
//
// net.Conn's Read and Write call the kernel with syscall.Syscall, which
// tells the scheduler that the thread may block: a system call that
// outlasts one sysmon tick (20 µs) gets its P handed to another thread,
// and every call out of an idle process wakes sysmon. On a non-blocking
// socket neither can help: the call never blocks, it only copies. For a
// proxy moving small messages the hand-offs are pure cost (futex wakes,
// context switches, sysmon's 20 µs ticks), so small reads and writes here
// are raw system calls made inside syscall.RawConn callbacks, which still
// wait in the network poller, honour deadlines and see Close. Large ones
// (over RawLimit) take the ordinary path, where another thread running
// Go code while the kernel copies is worth the hand-off.
package sockio

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// writeWaits counts writes that found the socket full and waited in the
// poller (tests check that they exercised that path).
var writeWaits atomic.Int64

// RawLimit is the largest read or write made with a raw system call.
const RawLimit = 64 << 10

// maxIovecs bounds the iovecs of one writev (Linux's IOV_MAX is 1024).
const maxIovecs = 1024

// Conn is a TCP connection with raw-syscall Read, Write and Writev.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// iov is Writev's scratch space; Writev has one caller at a time
	// (the connection's writer), as net.Conn writes must anyway.
	iov []syscall.Iovec
}

// Wrap returns c with raw-syscall I/O when it is a TCP connection, and c
// itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{TCPConn: tc, rc: rc}
}

// Read reads what the socket has, up to len(p) (at most RawLimit when
// p is larger: a short read is a valid read).
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > RawLimit {
		p = p[:RawLimit]
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) > RawLimit {
		return c.TCPConn.Write(p)
	}
	written := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
			switch e {
			case 0:
				written += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				writeWaits.Add(1)
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return written, c.opError("write", err)
	case errno != 0:
		return written, c.opError("write", os.NewSyscallError("write", errno))
	}
	return written, nil
}

// Writev writes every buffer, in order, with as few writev calls as the
// socket allows; bufs itself is left as it is.
func (c *Conn) Writev(bufs [][]byte) (int64, error) {
	var total int
	for _, b := range bufs {
		total += len(b)
	}
	if total > RawLimit || len(bufs) > maxIovecs {
		nb := net.Buffers(bufs)
		return nb.WriteTo(c.TCPConn)
	}
	iov := c.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			iov = append(iov, syscall.Iovec{Base: &b[0], Len: uint64(len(b))})
		}
	}
	c.iov = iov
	var written int64
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for len(iov) > 0 {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			switch e {
			case 0:
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				writeWaits.Add(1)
				return false
			default:
				errno = e
				return true
			}
			n := uint64(r)
			written += int64(n)
			for len(iov) > 0 && n >= iov[0].Len {
				n -= iov[0].Len
				iov = iov[1:]
			}
			if n > 0 { // part of iov[0] went out
				iov[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(iov[0].Base), n))
				iov[0].Len -= n
			}
		}
		return true
	})
	clear(c.iov[:cap(c.iov)]) // drop the references to the buffers
	switch {
	case err != nil:
		return written, c.opError("writev", err)
	case errno != 0:
		return written, c.opError("writev", os.NewSyscallError("writev", errno))
	}
	return written, nil
}

// opError shapes errors as net.Conn's own: a *net.OpError around the
// cause, so that timeouts, closed connections and resets test the same.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err // RawConn's own wrapping ("raw-read")
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
