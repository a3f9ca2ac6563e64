// Package frameio writes HTTP/2 frames for one connection without a
// syscall per frame: frames are appended to a buffer under a mutex, and a
// writer goroutine sends whatever has accumulated in one write. Under load
// many frames of many streams share one syscall; when idle a frame goes
// out after one goroutine wake-up.
//
// The same mutex guards everything that must change in step with the
// order of frames on the wire: the HPACK encoder's dynamic table, the send
// flow-control windows and stream-ID allocation. Callers hold it (Lock)
// while they decide what to send and append it.
//
// DATA is the one kind of frame whose bytes a proxy owes someone for: the
// sender that l7lb took them from gets window back only once they have
// left through this connection's socket. AppendData takes a Creditor for
// that, and the Writer calls it after the write, outside its lock; when
// the connection fails or closes instead, the Writer still calls it, so
// bytes it held are never lost to flow control.
//
// Lock order, for every package that uses a Writer: a client connection's
// Writer lock may be held while taking nothing else; a target
// connection's Writer lock likewise. Code that must touch both takes one,
// releases it, then takes the other; Creditors run with no lock held.
package frameio

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/l7lb/l7lb/internal/hpackenc"
	"github.com/l7lb/l7lb/internal/sockio"
)

// ErrClosed is returned once the connection is closed.
var ErrClosed = errors.New("connection closed")

// MaxQueuedControlFrames bounds control frames (PING and SETTINGS acks,
// RST_STREAM, WINDOW_UPDATE...) waiting to be written: a peer that floods
// us with frames needing an answer while not reading our answers gets its
// connection closed instead of growing our memory.
const MaxQueuedControlFrames = 10000

// Creditor is told that n bytes of DATA payload it appended are no longer
// held by the Writer: written to the socket, or dropped because the
// connection ended. It runs on the writer goroutine (or the goroutine that
// closed the Writer) with no lock held, and must not block.
type Creditor interface {
	Credit(n int)
}

type credit struct {
	to Creditor
	n  int
}

// Writer is one connection's frame writer.
type Writer struct {
	conn net.Conn

	mu      sync.Mutex
	out     chunks   // frames waiting for the writer goroutine
	credits []credit // owed for DATA in out, in order
	spare   []credit // credits' previous array, reused
	control int      // control frames in out
	hdr     [9]byte
	closed  bool
	err     error

	// Enc is the connection's HPACK encoder; use only under Lock.
	Enc    *hpackenc.Encoder
	encBuf []byte

	// MaxFrame is the peer's SETTINGS_MAX_FRAME_SIZE; under Lock.
	MaxFrame int

	// Sent counts DATA and HEADERS frames appended: the traffic that
	// legitimately draws PINGs from a peer (gRPC's BDP estimation).
	Sent atomic.Int64

	kick chan struct{}
	done chan struct{}
	// Parking: while its owner says the connection is idle (SetIdleLocked)
	// and nothing is queued, the writer goroutine exits, and the next Kick
	// starts another. An idle client connection then costs no goroutine
	// stack for writing; a busy one keeps its goroutine.
	idle   bool        // under mu
	parked atomic.Bool // no goroutine: Kick starts one
	// OnError is called once, from the writer goroutine, when a write
	// fails; the connection is closed then.
	OnError func(error)
	// BeforeClose, when set, runs before the writer closes its
	// connection, with no lock held (a parked reader must be taken out of
	// the poller before its socket closes; see idlepark). It may run more
	// than once.
	BeforeClose func()
	// WriteTimeout bounds one write to the peer (0 = none; a write may
	// fail after half of it): a peer that stops reading cannot pin the
	// writer forever.
	WriteTimeout time.Duration
	refreshAt    time.Time // when the write deadline needs moving; writer goroutine only
}

// NewWriter returns a Writer for conn; conn may be nil when Start is given
// a dial function. Frames can be appended before Start.
func NewWriter(conn net.Conn) *Writer {
	w := &Writer{conn: conn, kick: make(chan struct{}, 1), done: make(chan struct{}), MaxFrame: 16384}
	w.Enc = hpackenc.New()
	return w
}

// Start runs the writer goroutine. dial, when non-nil, is called first to
// produce the connection (frames appended in the meantime wait), so that
// opening a connection to a target never blocks the caller; the
// connection is then passed to ready, before anything is written.
func (w *Writer) Start(dial func() (net.Conn, error), ready func(net.Conn)) {
	go w.run(dial, ready)
}

// NewCond returns a condition variable on the writer's mutex, for callers
// that wait (under Lock) for flow-control window.
func (w *Writer) NewCond() *sync.Cond { return sync.NewCond(&w.mu) }

// Close stops the writer at once and closes the connection. DATA not
// written yet is dropped and its Creditors are told.
func (w *Writer) Close() {
	w.mu.Lock()
	w.closed = true
	c := w.conn
	w.mu.Unlock()
	if c != nil {
		w.beforeClose()
		c.Close()
	}
	w.Kick()
}

// dropQueued empties the queue of a writer that will write no more and
// settles what it owed.
func (w *Writer) dropQueued() {
	w.mu.Lock()
	bufs, arrs := w.out.take()
	owed := w.takeCredits()
	w.mu.Unlock()
	release(arrs)
	clear(bufs)
	w.settle(owed)
}

// takeCredits hands over the credits owed for what is in out; under mu.
func (w *Writer) takeCredits() []credit {
	owed := w.credits
	w.credits, w.spare = w.spare[:0], nil
	return owed
}

// settle tells each Creditor; with no lock held. The slice is kept for
// reuse.
func (w *Writer) settle(owed []credit) {
	if len(owed) == 0 {
		return
	}
	for i, c := range owed {
		c.to.Credit(c.n)
		owed[i] = credit{}
	}
	w.mu.Lock()
	if w.spare == nil && cap(owed) <= 1024 {
		w.spare = owed[:0]
	}
	w.mu.Unlock()
}

func (w *Writer) run(dial func() (net.Conn, error), ready func(net.Conn)) {
	if dial != nil {
		c, err := dial()
		if err != nil {
			w.fail(err)
			w.finish()
			return
		}
		w.mu.Lock()
		w.conn = c
		closed := w.closed
		w.mu.Unlock()
		if closed {
			c.Close()
			w.finish()
			return
		}
		if ready != nil {
			ready(c)
		}
	}
	w.loop()
}

// finish ends the writer: however it ends, the connection is over.
// Closing it also stops the connection's reader, and whatever DATA is
// still queued is dropped, its senders credited.
func (w *Writer) finish() {
	w.mu.Lock()
	w.closed = true
	c := w.conn
	w.mu.Unlock()
	if c != nil {
		w.beforeClose()
		c.Close()
	}
	w.dropQueued()
	close(w.done)
}

// SetIdleLocked tells the writer whether its connection is idle (no
// stream); under Lock. An idle writer's goroutine exits once the queue is
// written (see Writer.parked).
func (w *Writer) SetIdleLocked(idle bool) { w.idle = idle }

// park ends the writer goroutine if the connection is idle and nothing is
// queued; it reports whether the goroutine must exit.
func (w *Writer) park() bool {
	w.mu.Lock()
	ok := w.idle && !w.closed && w.out.len() == 0
	if ok {
		w.parked.Store(true)
	}
	w.mu.Unlock()
	if !ok {
		return false
	}
	// A Kick between taking the queue and parking saw a running writer
	// and started none: its token is still in the channel. Take over
	// again, unless a Kick since then started a new goroutine.
	if len(w.kick) > 0 {
		return !w.parked.CompareAndSwap(true, false)
	}
	return true
}

// loop writes what is queued, each time it is kicked, until the writer
// ends or parks.
func (w *Writer) loop() {
	for range w.kick {
		w.mu.Lock()
		bufs, arrs := w.out.take()
		owed := w.takeCredits()
		w.control = 0
		closed := w.closed
		w.mu.Unlock()
		if len(bufs) > 0 {
			if w.WriteTimeout > 0 {
				// Moving a deadline re-arms a runtime timer: refresh it
				// only when half of it has passed, so that a write has
				// between half of WriteTimeout and all of it.
				if now := time.Now(); now.After(w.refreshAt) {
					w.conn.SetWriteDeadline(now.Add(w.WriteTimeout))
					w.refreshAt = now.Add(w.WriteTimeout / 2)
				}
			}
			// One writev on a TCP connection; a TLS connection takes the
			// pieces one by one, each at least a full TLS record's worth.
			_, err := sockio.WriteBuffers(w.conn, bufs)
			release(arrs)
			if err != nil {
				w.fail(err)
				w.settle(owed)
				w.finish()
				return
			}
		}
		w.settle(owed)
		w.mu.Lock()
		w.out.giveBack(bufs, arrs)
		more := w.out.len() > 0
		w.mu.Unlock()
		if closed && !more {
			w.finish()
			return
		}
		if more {
			w.Kick()
		} else if w.park() {
			return
		}
	}
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.closed = true
	c := w.conn
	w.mu.Unlock()
	if c != nil {
		w.beforeClose()
		c.Close()
	}
	if w.OnError != nil {
		w.OnError(err)
	}
}

func (w *Writer) beforeClose() {
	if w.BeforeClose != nil {
		w.BeforeClose()
	}
}

// Conn is the connection (nil while a dial is in progress).
func (w *Writer) Conn() net.Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn
}

// Lock takes the writer's mutex.
func (w *Writer) Lock() { w.mu.Lock() }

// Unlock releases it.
func (w *Writer) Unlock() { w.mu.Unlock() }

// Kick wakes the writer goroutine, or starts one if it parked; call after
// Unlock.
func (w *Writer) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
	if w.parked.Load() && w.parked.CompareAndSwap(true, false) {
		go w.loop()
	}
}

// Closed reports (under Lock) whether the writer stopped.
func (w *Writer) Closed() bool { return w.closed }

// CloseAfterFlush stops the writer once what is buffered is written.
func (w *Writer) CloseAfterFlush() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	w.Kick()
}

// CloseAfterFlushLocked is CloseAfterFlush for callers holding Lock; they
// must Kick after Unlock.
func (w *Writer) CloseAfterFlushLocked() { w.closed = true }

// Wait blocks until the writer goroutine ended or d passed.
func (w *Writer) Wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
		return true
	case <-t.C:
		return false
	}
}

// Err is why the writer stopped, if it failed.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Buffered is the number of bytes waiting (under Lock).
func (w *Writer) Buffered() int { return w.out.len() }

// The Append* methods add one frame; call them under Lock. They report
// false when the writer is closed or the peer let too many control frames
// pile up (the caller should then close the connection).

func (w *Writer) header(length int, t http2.FrameType, flags http2.Flags, stream uint32) {
	w.hdr = [9]byte{byte(length >> 16), byte(length >> 8), byte(length), byte(t), byte(flags),
		byte(stream>>24) & 0x7f, byte(stream >> 16), byte(stream >> 8), byte(stream)}
	w.out.write(w.hdr[:])
}

func (w *Writer) control1() bool {
	if w.closed {
		return false
	}
	w.control++
	return w.control <= MaxQueuedControlFrames
}

// AppendData appends DATA frames carrying p (split at MaxFrame); the last
// one carries END_STREAM when end is set. to, when not nil, is credited
// with len(p) once the frames left through the socket or were dropped.
// On false nothing was queued and to is not called: the bytes are still
// the caller's.
func (w *Writer) AppendData(stream uint32, p []byte, end bool, to Creditor) bool {
	if w.closed {
		return false
	}
	w.Sent.Add(1)
	if len(p) > 0 && to != nil {
		w.credits = append(w.credits, credit{to, len(p)})
	}
	maxFrame := w.maxFrame()
	for {
		n := min(len(p), maxFrame)
		var flags http2.Flags
		if end && n == len(p) {
			flags = http2.FlagDataEndStream
		}
		w.header(n, http2.FrameData, flags, stream)
		w.out.write(p[:n])
		p = p[n:]
		if len(p) == 0 {
			return true
		}
	}
}

// maxFrame is MaxFrame within what RFC 9113 §6.5.2 allows: a value the
// peer could not legally send must never make the split loops spin or
// produce frames it cannot take.
func (w *Writer) maxFrame() int {
	return min(max(w.MaxFrame, MinMaxFrameSize), MaxMaxFrameSize)
}

// The bounds of SETTINGS_MAX_FRAME_SIZE.
const (
	MinMaxFrameSize = 1 << 14
	MaxMaxFrameSize = 1<<24 - 1
)

// EncodeField HPACK-encodes one header field into the pending header block.
func (w *Writer) EncodeField(name, value string) {
	w.encBuf = w.Enc.AppendField(w.encBuf, name, value, false)
}

// EncodeSensitive encodes a field that must never enter the dynamic table.
func (w *Writer) EncodeSensitive(name, value string) {
	w.encBuf = w.Enc.AppendField(w.encBuf, name, value, true)
}

// AppendHeaders appends the header block encoded since the last call as a
// HEADERS frame (plus CONTINUATION frames if it exceeds MaxFrame).
func (w *Writer) AppendHeaders(stream uint32, end bool) bool {
	block := w.encBuf
	w.encBuf = w.encBuf[:0]
	w.Enc.EndBlock()
	if w.closed {
		return false
	}
	w.Sent.Add(1)
	first := true
	maxFrame := w.maxFrame()
	for {
		n := min(len(block), maxFrame)
		var flags http2.Flags
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		t := http2.FrameContinuation
		if first {
			t = http2.FrameHeaders
			if end {
				flags |= http2.FlagHeadersEndStream
			}
		}
		w.header(n, t, flags, stream)
		w.out.write(block[:n])
		block = block[n:]
		first = false
		if len(block) == 0 {
			return true
		}
	}
}

// DiscardHeaders drops a header block that will not be sent. The HPACK
// encoder state already changed, so the connection's encoder must not be
// used for anything the peer decodes after this; only use it when the
// connection is going away.
func (w *Writer) DiscardHeaders() {
	w.encBuf = w.encBuf[:0]
	w.Enc.EndBlock()
}

// AppendRST appends RST_STREAM.
func (w *Writer) AppendRST(stream uint32, code http2.ErrCode) bool {
	if !w.control1() {
		return false
	}
	w.header(4, http2.FrameRSTStream, 0, stream)
	w.u32(uint32(code))
	return true
}

// AppendWindowUpdate appends WINDOW_UPDATE (stream 0: the connection).
func (w *Writer) AppendWindowUpdate(stream uint32, incr uint32) bool {
	if !w.control1() {
		return false
	}
	w.header(4, http2.FrameWindowUpdate, 0, stream)
	w.u32(incr & 0x7fffffff)
	return true
}

// AppendPing appends PING.
func (w *Writer) AppendPing(ack bool, data [8]byte) bool {
	if !w.control1() {
		return false
	}
	var flags http2.Flags
	if ack {
		flags = http2.FlagPingAck
	}
	w.header(8, http2.FramePing, flags, 0)
	w.out.write(data[:])
	return true
}

// AppendSettings appends a SETTINGS frame.
func (w *Writer) AppendSettings(settings ...http2.Setting) bool {
	if w.closed {
		return false
	}
	w.header(6*len(settings), http2.FrameSettings, 0, 0)
	for _, s := range settings {
		var b [6]byte
		binary.BigEndian.PutUint16(b[:], uint16(s.ID))
		binary.BigEndian.PutUint32(b[2:], s.Val)
		w.out.write(b[:])
	}
	return true
}

// AppendSettingsAck acknowledges the peer's SETTINGS.
func (w *Writer) AppendSettingsAck() bool {
	if !w.control1() {
		return false
	}
	w.header(0, http2.FrameSettings, http2.FlagSettingsAck, 0)
	return true
}

// AppendGoAway appends GOAWAY.
func (w *Writer) AppendGoAway(lastStream uint32, code http2.ErrCode, debug string) bool {
	if w.closed {
		return false
	}
	w.header(8+len(debug), http2.FrameGoAway, 0, 0)
	w.u32(lastStream & 0x7fffffff)
	w.u32(uint32(code))
	w.out.write([]byte(debug))
	return true
}

// AppendRaw appends bytes as they are (the client preface).
func (w *Writer) AppendRaw(p []byte) { w.out.write(p) }

func (w *Writer) u32(v uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	w.out.write(b[:])
}
