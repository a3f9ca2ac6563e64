package fakemilvus

import (
	"bytes"
	"io"
	"net"
	"sync"
	"time"
)

// http2Preface is what every HTTP/2 client (and so every gRPC client) sends
// first. Milvus 2.6 routes on it too (cmux.HTTP2()), so h2c REST would reach
// the gRPC server there as well.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// peekTimeout bounds how long an accepted connection may stay silent before
// we know which server it belongs to.
const peekTimeout = 10 * time.Second

// sniff reads just enough of conn to tell HTTP/2 from anything else. It
// returns the bytes read so they can be replayed to the chosen server.
func sniff(conn net.Conn) (isHTTP2 bool, peeked []byte, err error) {
	if err := conn.SetReadDeadline(time.Now().Add(peekTimeout)); err != nil {
		return false, nil, err
	}
	buf := make([]byte, 0, len(http2Preface))
	tmp := make([]byte, len(http2Preface))
	for len(buf) < len(http2Preface) {
		n, err := conn.Read(tmp[:len(http2Preface)-len(buf)])
		buf = append(buf, tmp[:n]...)
		// Decide on the first byte that differs; HTTP/1.1 requests never
		// get past "P" + "O"/"U"/"A", so this costs one read in practice.
		if !bytes.HasPrefix([]byte(http2Preface), buf) {
			return false, buf, conn.SetReadDeadline(time.Time{})
		}
		if err != nil {
			return false, buf, err
		}
	}
	return true, buf, conn.SetReadDeadline(time.Time{})
}

// muxConn replays the sniffed bytes before reading from the socket, and
// untracks itself from its run on Close.
type muxConn struct {
	net.Conn
	r       io.Reader
	onClose func()
	once    sync.Once
}

func newMuxConn(c net.Conn, peeked []byte, onClose func()) *muxConn {
	return &muxConn{Conn: c, r: io.MultiReader(bytes.NewReader(peeked), c), onClose: onClose}
}

func (c *muxConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *muxConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
	return err
}

// chanListener is the net.Listener the grpc.Server and http.Server accept
// from; the replica's accept loop feeds it sniffed connections.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// push hands c to the server; false means the server is gone.
func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
