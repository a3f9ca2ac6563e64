package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/frameio"
	"github.com/l7lb/l7lb/internal/sockio"
)

// Windows l7lb grants a target for response data. Credit goes back to the
// target as the data is handed to the client, so at most this much of one
// response (and of one connection) sits in l7lb.
const (
	streamRecvWindow = 1 << 20
	connRecvWindow   = 16 << 20
)

// Sink receives what a target sends on one stream. Calls come from the
// connection's reader goroutine, one at a time, and must not block: a
// Sink copies or forwards what it gets.
type Sink interface {
	// Headers delivers response headers, or trailers after them. Writers
	// the Sink appends to are woken through b (the reader's batch).
	Headers(fields []hpack.HeaderField, end bool, b *frameio.Batch)
	// Data delivers response bytes; p is only valid during the call. The
	// Sink calls Stream.Consumed once the bytes are off its hands.
	Data(p []byte, end bool, b *frameio.Batch)
	// Reset ends the stream abnormally: code is the target's RST_STREAM
	// code, or err the connection failure. refused is true when the target
	// certainly did not process the request (a GOAWAY that excluded the
	// stream, REFUSED_STREAM, or a connection that never came up).
	Reset(code http2.ErrCode, err error, refused bool)
	// Sent reports request bytes that left l7lb toward the target, so the
	// client can be given window for more. It may be called from any
	// goroutine, never with a connection lock held.
	Sent(n int)
}

// Conns are the multiplexed HTTP/2 connections to one target: usually one,
// more when the target limits concurrent streams or a connection is going
// away. A Conns is safe for concurrent use; Open is lock-free on the
// common path.
type Conns struct {
	addr   string
	secure bool
	dialer *net.Dialer

	cur    atomic.Pointer[Conn]
	mu     sync.Mutex // slow path: replacing cur
	all    map[*Conn]struct{}
	closed bool
}

// NewConns prepares connections to addr (h2c, or h2 over TLS when secure).
func NewConns(addr string, secure bool) *Conns {
	return &Conns{addr: addr, secure: secure, dialer: &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}, all: map[*Conn]struct{}{}}
}

// Addr is the target address.
func (cs *Conns) Addr() string { return cs.addr }

// ErrTargetClosed is returned by Open after Close.
var ErrTargetClosed = errors.New("target removed")

// HeaderEncoder writes a request's header fields with w; it runs under
// the connection's lock so that HPACK state follows wire order. It also
// receives the new stream, before any of its frames can reach the target
// (and so before the Sink can be called).
type HeaderEncoder func(s *Stream, w *frameio.Writer)

// Open starts a request stream in s: encode writes its header fields,
// end marks a request without body. The stream is registered before Open
// returns, so the Sink may be called right away (from another goroutine).
// s is memory the caller provides (so that the stream can live inside the
// caller's own per-request value): a zero Stream, or one whose Open
// failed; never one that was opened before.
//
// b, when non-nil, defers waking the connection's writer (see
// frameio.Batch).
func (cs *Conns) Open(s *Stream, sink Sink, encode HeaderEncoder, end bool, b *frameio.Batch) error {
	for attempt := 0; attempt < 3; attempt++ {
		c := cs.cur.Load()
		if c == nil || !c.usable() {
			var err error
			if c, err = cs.replace(c); err != nil {
				return err
			}
		}
		if c.open(s, sink, encode, end, b) {
			return nil
		}
		cs.retire(c)
	}
	return fmt.Errorf("no usable connection to %s", cs.addr)
}

// replace installs a new connection unless another goroutine already did.
func (cs *Conns) replace(old *Conn) (*Conn, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return nil, ErrTargetClosed
	}
	if c := cs.cur.Load(); c != old && c != nil && c.usable() {
		return c, nil
	}
	c := newConn(cs)
	cs.all[c] = struct{}{}
	cs.cur.Store(c)
	return c, nil
}

func (cs *Conns) retire(c *Conn) {
	cs.cur.CompareAndSwap(c, nil)
}

func (cs *Conns) forget(c *Conn) {
	cs.retire(c)
	cs.mu.Lock()
	delete(cs.all, c)
	cs.mu.Unlock()
}

// Close stops new streams; connections close when their streams end.
func (cs *Conns) Close() {
	cs.mu.Lock()
	cs.closed = true
	conns := make([]*Conn, 0, len(cs.all))
	for c := range cs.all {
		conns = append(conns, c)
	}
	cs.mu.Unlock()
	cs.cur.Store(nil)
	for _, c := range conns {
		c.drain()
	}
}

// Abort fails every stream in flight and closes the connections (a
// deregistration delay ran out).
func (cs *Conns) Abort() {
	cs.Close()
	cs.mu.Lock()
	conns := make([]*Conn, 0, len(cs.all))
	for c := range cs.all {
		conns = append(conns, c)
	}
	cs.mu.Unlock()
	for _, c := range conns {
		c.fail(fmt.Errorf("target %s deregistered: deregistration delay over", cs.addr), false)
	}
}

// Active is the number of streams in flight to this target.
func (cs *Conns) Active() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := 0
	for c := range cs.all {
		n += int(c.active.Load())
	}
	return n
}

func (cs *Conns) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	c, err := cs.dialer.DialContext(ctx, "tcp", cs.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c = sockio.Wrap(c)
	if !cs.secure {
		return c, nil
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http2.NextProtoTLS}}) //nolint:gosec // the ALB does not verify targets either
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// Conn is one HTTP/2 connection to a target.
type Conn struct {
	cs *Conns
	w  *frameio.Writer

	active atomic.Int32

	// Under w's lock:
	nextID      uint32
	streams     map[uint32]*Stream
	sendWin     int64 // connection-level window for request data
	initSendWin int64 // the target's SETTINGS_INITIAL_WINDOW_SIZE
	maxStreams  uint32
	blocked     []*Stream
	goingAway   bool // GOAWAY received or draining: no new streams
	dead        bool

	recvOwed atomic.Int64 // connection-level credit not yet returned
	recvUsed int64        // placeholder, maintained by the flow refactor

	// reader goroutine
	rbuf  *bufio.Reader
	batch *frameio.Batch
}

func newConn(cs *Conns) *Conn {
	c := &Conn{cs: cs, nextID: 1, streams: map[uint32]*Stream{}, sendWin: 65535, initSendWin: 65535, maxStreams: 1 << 31}
	c.w = frameio.NewWriter(nil)
	c.w.WriteTimeout = 30 * time.Second
	c.w.OnError = func(err error) { c.fail(err, false) }
	// The preface and settings go first, before any stream's frames.
	c.w.Lock()
	c.w.AppendRaw([]byte(http2.ClientPreface))
	c.w.AppendSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamRecvWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1 << 20},
	)
	c.w.AppendWindowUpdate(0, connRecvWindow-65535)
	c.w.Unlock()
	c.w.Start(func() (net.Conn, error) {
		nc, err := cs.dial()
		if err != nil {
			// Nothing was sent: every stream queued here was refused.
			c.fail(fmt.Errorf("connect to %s: %w", cs.addr, err), true)
			return nil, err
		}
		return nc, nil
	}, func(nc net.Conn) { go c.read(nc) })
	c.w.Kick()
	return c
}

func (c *Conn) usable() bool {
	c.w.Lock()
	defer c.w.Unlock()
	return !c.goingAway && !c.dead && uint32(len(c.streams)) < c.maxStreams && c.nextID < 1<<30
}

// open registers and starts a stream; false if the connection cannot take
// it.
func (c *Conn) open(s *Stream, sink Sink, encode HeaderEncoder, end bool, b *frameio.Batch) bool {
	c.w.Lock()
	if c.goingAway || c.dead || uint32(len(c.streams)) >= c.maxStreams || c.nextID >= 1<<30 {
		c.w.Unlock()
		return false
	}
	s.c, s.id, s.sink, s.sendWin, s.endSent = c, c.nextID, sink, c.initSendWin, end
	c.nextID += 2
	c.streams[s.id] = s
	c.active.Add(1)
	encode(s, c.w)
	c.w.AppendHeaders(s.id, end)
	c.w.Unlock()
	b.Kick(c.w)
	return true
}

// drain stops new streams and closes the connection once idle.
func (c *Conn) drain() {
	c.w.Lock()
	c.goingAway = true
	idle := len(c.streams) == 0
	c.w.Unlock()
	if idle {
		c.w.Close()
		c.cs.forget(c)
	}
}

// fail ends every stream on the connection.
func (c *Conn) fail(err error, refused bool) {
	c.w.Lock()
	if c.dead {
		c.w.Unlock()
		return
	}
	c.dead = true
	streams := make([]*Stream, 0, len(c.streams))
	for id, s := range c.streams {
		streams = append(streams, s)
		delete(c.streams, id)
	}
	c.w.Unlock()
	c.w.Close()
	c.cs.forget(c)
	for _, s := range streams {
		c.active.Add(-1)
		s.sink.Reset(0, err, refused)
	}
}

// read is the connection's reader goroutine.
func (c *Conn) read(nc net.Conn) {
	c.rbuf = bufio.NewReaderSize(nc, 64<<10)
	c.batch = &frameio.Batch{}
	defer c.batch.Flush()
	frames := frameio.NewReader(c.rbuf, 1<<24, 1<<20)
	for {
		if c.rbuf.Buffered() == 0 {
			c.batch.Flush() // about to block: wake the writers we fed
		}
		kind, f, err := frames.Next()
		if err == nil {
			switch kind {
			case frameio.HeaderBlock:
				err = c.headerBlock(frames.Headers)
			case frameio.WindowUpdateFrame:
				c.windowUpdate(frames.Window)
			case frameio.PingFrame:
				if !frames.Ping.Ack {
					c.w.Lock()
					c.w.AppendPing(true, frames.Ping.Data)
					c.w.Unlock()
					c.batch.Kick(c.w)
				}
			case frameio.OtherFrame:
				err = c.handle(f)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("target %s closed the connection", c.cs.addr)
			}
			c.fail(err, false)
			return
		}
	}
}

func (c *Conn) headerBlock(hr *frameio.HeaderReader) error {
	if err := hr.Err(); err != nil {
		return fmt.Errorf("target %s sent a bad header block: %w", c.cs.addr, err)
	}
	if s := c.stream(hr.StreamID); s != nil {
		end := hr.EndStream
		s.sink.Headers(hr.Fields(), end, c.batch)
		if end {
			c.endRecv(s)
		}
	}
	return nil
}

// windowUpdate adds a WINDOW_UPDATE's credit and sends what it unblocks.
func (c *Conn) windowUpdate(f frameio.WindowUpdate) {
	c.w.Lock()
	var sent []sentReport
	if f.StreamID == 0 {
		c.sendWin += int64(f.Increment)
		unblocked := c.blocked
		c.blocked = nil
		sent = c.flushBlocked(unblocked)
	} else if s := c.streams[f.StreamID]; s != nil {
		s.sendWin += int64(f.Increment)
		if len(s.pending) > 0 || s.pendingEnd {
			sent = c.flushBlocked([]*Stream{s})
		}
	}
	c.w.Unlock()
	if len(sent) > 0 {
		c.batch.Kick(c.w)
	}
	reportSent(sent)
}

func (c *Conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		data := f.Data()
		if pad := int(f.Length) - len(data); pad > 0 {
			c.credit(pad)
		}
		s := c.stream(f.StreamID)
		if s == nil {
			c.credit(len(data))
			return nil
		}
		end := f.StreamEnded()
		s.sink.Data(data, end, c.batch)
		if end {
			c.endRecv(s)
		}
	case *http2.RSTStreamFrame:
		c.w.Lock()
		s := c.streams[f.StreamID]
		if s != nil {
			delete(c.streams, f.StreamID)
			s.done = true
		}
		c.w.Unlock()
		if s != nil {
			c.active.Add(-1)
			s.sink.Reset(f.ErrCode, nil, f.ErrCode == http2.ErrCodeRefusedStream)
			c.closeIfDrained()
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		c.w.Lock()
		var unblocked []*Stream
		f.ForeachSetting(func(st http2.Setting) error {
			switch st.ID {
			case http2.SettingInitialWindowSize:
				delta := int64(st.Val) - c.initSendWin
				c.initSendWin = int64(st.Val)
				for _, s := range c.streams {
					s.sendWin += delta
				}
				unblocked = c.blocked
				c.blocked = nil
			case http2.SettingMaxFrameSize:
				c.w.MaxFrame = int(st.Val)
			case http2.SettingMaxConcurrentStreams:
				c.maxStreams = st.Val
			case http2.SettingHeaderTableSize:
				c.w.Enc.SetPeerLimit(st.Val)
			}
			return nil
		})
		c.w.AppendSettingsAck()
		sent := c.flushBlocked(unblocked)
		c.w.Unlock()
		c.batch.Kick(c.w)
		reportSent(sent)
	case *http2.GoAwayFrame:
		// Streams above LastStreamID were never processed: refused.
		c.w.Lock()
		c.goingAway = true
		var refused []*Stream
		for id, s := range c.streams {
			if id > f.LastStreamID {
				refused = append(refused, s)
				delete(c.streams, id)
				s.done = true
			}
		}
		c.w.Unlock()
		c.cs.retire(c)
		for _, s := range refused {
			c.active.Add(-1)
			s.sink.Reset(http2.ErrCodeRefusedStream, fmt.Errorf("target %s is going away (GOAWAY %v)", c.cs.addr, f.ErrCode), true)
		}
		c.closeIfDrained()
	}
	return nil
}

func (c *Conn) stream(id uint32) *Stream {
	c.w.Lock()
	s := c.streams[id]
	c.w.Unlock()
	return s
}

// endRecv records that the target finished its response on s.
func (c *Conn) endRecv(s *Stream) {
	c.w.Lock()
	s.recvEnded = true
	finished := s.endSent && len(s.pending) == 0
	reset := false
	if !finished && !s.done {
		// The target answered before the whole request was sent (an early
		// error): stop the upload.
		s.pending = nil
		s.pendingEnd = false
		c.w.AppendRST(s.id, http2.ErrCodeCancel)
		finished, reset = true, true
	}
	if finished && !s.done {
		s.done = true
		delete(c.streams, s.id)
		c.active.Add(-1)
	}
	drained := c.goingAway && len(c.streams) == 0 && !c.dead
	c.w.Unlock()
	if reset {
		c.batch.Kick(c.w)
	}
	if drained {
		c.closeIfDrained()
	}
}

func (c *Conn) closeIfDrained() {
	c.w.Lock()
	idle := c.goingAway && len(c.streams) == 0 && !c.dead
	c.w.Unlock()
	if idle {
		c.w.CloseAfterFlush()
		c.cs.forget(c)
	}
}

// credit returns n bytes of connection-level window to the target.
func (c *Conn) credit(n int) {
	if n <= 0 {
		return
	}
	if owed := c.recvOwed.Add(int64(n)); owed >= connRecvWindow/4 {
		c.recvOwed.Add(-owed)
		c.w.Lock()
		c.w.AppendWindowUpdate(0, uint32(owed))
		c.w.Unlock()
		c.w.Kick()
	}
}

type sentReport struct {
	s *Stream
	n int
}

func reportSent(rs []sentReport) {
	for _, r := range rs {
		r.s.sink.Sent(r.n)
	}
}

// flushBlocked sends what the windows allow of each stream's pending
// request data; under w's lock.
func (c *Conn) flushBlocked(streams []*Stream) []sentReport {
	var out []sentReport
	for _, s := range streams {
		if s.done {
			continue
		}
		n := s.sendPending()
		if n > 0 {
			out = append(out, sentReport{s, n})
		}
		if len(s.pending) > 0 {
			c.blocked = append(c.blocked, s)
		}
	}
	return out
}

// Stream is the target side of one forwarded request.
type Stream struct {
	c    *Conn
	id   uint32
	sink Sink

	// Under c.w's lock:
	sendWin    int64
	pending    []byte // request data waiting for window
	pendingEnd bool
	endSent    bool
	recvEnded  bool
	done       bool

	recvOwed atomic.Int64
}

// ID is the stream's identifier on its connection.
func (s *Stream) ID() uint32 { return s.id }

// Target is the address the stream went to.
func (s *Stream) Target() string { return s.c.cs.addr }

// sendPending writes pending data within the windows; under the lock.
func (s *Stream) sendPending() int {
	c := s.c
	n := int(min(int64(len(s.pending)), s.sendWin, c.sendWin))
	if n <= 0 && !(len(s.pending) == 0 && s.pendingEnd) {
		return 0
	}
	end := s.pendingEnd && n == len(s.pending)
	c.w.AppendData(s.id, s.pending[:n], end)
	s.sendWin -= int64(n)
	c.sendWin -= int64(n)
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	if end {
		s.endSent = true
		s.pendingEnd = false
		s.finishIfDone()
	}
	return n
}

// finishIfDone removes a stream whose both directions ended; under lock.
func (s *Stream) finishIfDone() {
	if s.endSent && s.recvEnded && !s.done {
		s.done = true
		delete(s.c.streams, s.id)
		s.c.active.Add(-1)
	}
}

// Data sends request bytes (copied); end closes the request side. Bytes
// the windows do not allow yet wait in l7lb and go out as the target
// grants window; Sink.Sent reports each part that left.
func (s *Stream) Data(p []byte, end bool, b *frameio.Batch) {
	c := s.c
	c.w.Lock()
	if s.done || s.endSent {
		c.w.Unlock()
		return
	}
	sent := 0
	if len(s.pending) == 0 {
		n := int(min(int64(len(p)), s.sendWin, c.sendWin))
		if n > 0 || (len(p) == 0 && end) {
			fin := end && n == len(p)
			c.w.AppendData(s.id, p[:n], fin)
			s.sendWin -= int64(n)
			c.sendWin -= int64(n)
			sent = n
			p = p[n:]
			if fin {
				s.endSent = true
				s.finishIfDone()
			}
		}
	}
	if len(p) > 0 || (end && !s.endSent) {
		wasBlocked := len(s.pending) > 0 || s.pendingEnd
		s.pending = append(s.pending, p...)
		s.pendingEnd = end
		if !wasBlocked {
			c.blocked = append(c.blocked, s)
		}
	}
	c.w.Unlock()
	b.Kick(c.w)
	if sent > 0 {
		s.sink.Sent(sent)
	}
}

// Trailers sends request trailers, ending the request side.
func (s *Stream) Trailers(encode HeaderEncoder) {
	c := s.c
	c.w.Lock()
	if !s.done && !s.endSent && len(s.pending) == 0 {
		encode(s, c.w)
		c.w.AppendHeaders(s.id, true)
		s.endSent = true
		s.finishIfDone()
	}
	c.w.Unlock()
	c.w.Kick()
}

// Cancel resets the stream toward the target (the client reset it, or
// l7lb gave up on it).
func (s *Stream) Cancel(code http2.ErrCode) {
	c := s.c
	c.w.Lock()
	if s.done {
		c.w.Unlock()
		return
	}
	s.done = true
	s.pending = nil
	delete(c.streams, s.id)
	c.w.AppendRST(s.id, code)
	c.w.Unlock()
	c.active.Add(-1)
	c.w.Kick()
	c.closeIfDrained()
}

// Consumed returns window to the target for n response bytes that the
// client side took.
func (s *Stream) Consumed(n int) {
	if n <= 0 {
		return
	}
	c := s.c
	c.credit(n)
	if owed := s.recvOwed.Add(int64(n)); owed >= streamRecvWindow/4 {
		s.recvOwed.Add(-owed)
		c.w.Lock()
		if !s.recvEnded && !s.done {
			c.w.AppendWindowUpdate(s.id, uint32(owed))
		}
		c.w.Unlock()
		c.w.Kick()
	}
}

// ConnFlow is one target connection's flow-control state right now, for
// tests and status pages.
type ConnFlow struct {
	Target string
	// Streams is how many streams l7lb still tracks on the connection.
	Streams int
	// SendWindow is what l7lb may still send on the connection.
	SendWindow int64
	// RecvWindow is what the target may still send on the connection,
	// counting credit l7lb owes it but has not sent yet; with no stream
	// open it equals RecvWindowInitial.
	RecvWindow, RecvWindowInitial int64
	// Queued is what the writer holds for the socket.
	Queued int
	// Usable is false once the connection takes no new streams.
	Usable bool
}

// Flow reports the flow-control state of every connection to the target.
func (cs *Conns) Flow() []ConnFlow {
	cs.mu.Lock()
	conns := make([]*Conn, 0, len(cs.all))
	for c := range cs.all {
		conns = append(conns, c)
	}
	cs.mu.Unlock()
	out := make([]ConnFlow, 0, len(conns))
	for _, c := range conns {
		c.w.Lock()
		f := ConnFlow{
			Target: cs.addr, Streams: len(c.streams), SendWindow: c.sendWin,
			RecvWindow: connRecvWindow - c.recvUsed + c.recvOwed.Load(), RecvWindowInitial: connRecvWindow,
			Queued: c.w.Buffered(),
			Usable: !c.goingAway && !c.dead,
		}
		c.w.Unlock()
		out = append(out, f)
	}
	return out
}
