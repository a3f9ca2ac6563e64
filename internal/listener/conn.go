package listener

import (
	"bufio"
	"net"
	"sync"

	"github.com/l7lb/l7lb/internal/mtls"
	"github.com/l7lb/l7lb/internal/sockio"
)

// peekedConn replays the bytes read while sniffing the protocol.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Writev keeps the connection's vectored writes (sockio.Conn) reachable
// through the wrapper.
func (c *peekedConn) Writev(bufs [][]byte) (int64, error) { return sockio.WriteBuffers(c.Conn, bufs) }

// trackedConn tells its owner when net/http has closed it.
type trackedConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
	hdrs []mtls.Header // the connection's mTLS headers (nil: none)
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	return err
}

// connQueue is a net.Listener fed with connections that were accepted and
// classified as HTTP/1.1 elsewhere, so that net/http's server can serve
// them.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	mu     sync.Mutex
	done   chan struct{}
	closed bool
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to the server and returns a channel closed when the
// server has closed it; nil when the queue is closed.
func (q *connQueue) push(c net.Conn, hdrs []mtls.Header) <-chan struct{} {
	tc := &trackedConn{Conn: c, done: make(chan struct{}), hdrs: hdrs}
	select {
	case q.ch <- tc:
		return tc.done
	case <-q.done:
		return nil
	}
}

// Accept implements net.Listener.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
}

// Close implements net.Listener.
func (q *connQueue) Close() error { q.close(); return nil }

// Addr implements net.Listener.
func (q *connQueue) Addr() net.Addr { return q.addr }
