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
	"sync"
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
//
// The RawConn callbacks are method values made once, with their
// arguments and results in the Conn (a closure per call would allocate);
// rmu and wmu keep concurrent readers, or writers, from sharing them.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(uintptr) bool
	iov     []syscall.Iovec // Writev's, consumed as the kernel takes bytes
	iovFn   func(uintptr) bool
}

// Wrap returns c with raw-syscall I/O when it is a TCP connection, and c
// itself otherwise.
func Wrap(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &Conn{TCPConn: tc, rc: rc}
	c.readFn, c.writeFn, c.iovFn = c.read, c.write, c.writev
	return c
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
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn) // sets c.rerrno: read it only after
	err = c.result("read", err, c.rerrno)
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

func (c *Conn) read(fd uintptr) bool {
	p := c.rbuf
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller
		}
		c.rn, c.rerrno = int(r), e
		return true
	}
}

// Write writes all of p.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) > RawLimit {
		return c.TCPConn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn) // sets c.werrno: read it only after
	err = c.result("write", err, c.werrno)
	c.wbuf = nil
	return c.wn, err
}

func (c *Conn) write(fd uintptr) bool {
	p := c.wbuf
	for c.wn < len(p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[c.wn])), uintptr(len(p)-c.wn))
		switch e {
		case 0:
			c.wn += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			writeWaits.Add(1)
			return false // wait in the poller
		default:
			c.werrno = e
			return true
		}
	}
	return true
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
	c.wmu.Lock()
	defer c.wmu.Unlock()
	iov := c.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			iov = append(iov, syscall.Iovec{Base: &b[0], Len: uint64(len(b))})
		}
	}
	c.iov, c.wn, c.werrno = iov, 0, 0
	err := c.rc.Write(c.iovFn) // sets c.werrno: read it only after
	err = c.result("writev", err, c.werrno)
	clear(iov[:cap(iov)]) // drop the references to the buffers
	c.iov = iov[:0]
	return int64(c.wn), err
}

func (c *Conn) writev(fd uintptr) bool {
	for len(c.iov) > 0 {
		iov := c.iov
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			writeWaits.Add(1)
			return false // wait in the poller
		default:
			c.werrno = e
			return true
		}
		n := uint64(r)
		c.wn += int(n)
		for len(iov) > 0 && n >= iov[0].Len {
			n -= iov[0].Len
			iov = iov[1:]
		}
		if n > 0 { // part of iov[0] went out
			iov[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(iov[0].Base), n))
			iov[0].Len -= n
		}
		c.iov = iov
	}
	return true
}

// result turns what a RawConn call and its system calls returned into
// the call's error: the poller's (deadline, Close) first, then errno's.
func (c *Conn) result(op string, err error, errno syscall.Errno) error {
	switch {
	case err != nil:
		return c.opError(op, err)
	case errno != 0:
		return c.opError(op, os.NewSyscallError(op, errno))
	}
	return nil
}

// vectorWriter is a connection that writes many buffers with one call:
// a *Conn, or a wrapper that passes the call on.
type vectorWriter interface {
	Writev(bufs [][]byte) (int64, error)
}

// WriteBuffers writes bufs to c with c's Writev when it has one (a *Conn,
// possibly wrapped), with net.Buffers on a bare *net.TCPConn (its writev),
// and buffer by buffer otherwise (a TLS connection: net.Buffers would do
// the same, after allocating itself). net.Buffers.WriteTo alone would miss
// the raw path: it finds net's own vectored writer, promoted from the
// embedded *net.TCPConn.
func WriteBuffers(c net.Conn, bufs [][]byte) (int64, error) {
	switch c := c.(type) {
	case vectorWriter:
		return c.Writev(bufs)
	case *net.TCPConn:
		nb := net.Buffers(bufs)
		return nb.WriteTo(c)
	}
	var n int64
	for _, b := range bufs {
		m, err := c.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// opError shapes errors as net.Conn's own: a *net.OpError around the
// cause, so that timeouts, closed connections and resets test the same.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err // RawConn's own wrapping ("raw-read")
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
