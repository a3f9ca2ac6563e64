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

	"github.com/l7lb/l7lb/internal/balance/load"
	"github.com/l7lb/l7lb/internal/frameio"
	"github.com/l7lb/l7lb/internal/sockio"
)

// Windows l7lb grants a target for response data.
//
// The connection window is credited as soon as DATA arrives, whatever
// becomes of its stream: one connection carries the streams of many
// clients, and a client that stops reading must not take the window the
// others need (nor can a stream that ends leak any of it). What bounds
// memory is the stream window: a target stream starts with
// StreamWindowFloor, and the client side grants more (Stream.Grant) from
// its own connection's budget, then gives back only what has left toward
// its client.
const (
	StreamWindowFloor = 16 << 10
	connRecvWindow    = 16 << 20
	maxWindow         = 1<<31 - 1
)

// StallTimeout is how long a connection may have requests waiting with
// no connection window before it is given up (see Conn.checkStall). It
// also bounds one write to the target.
var StallTimeout = 30 * time.Second

// stalls counts connections given up for that.
var stalls atomic.Uint64

// Stalls reports how many target connections were closed because the
// target granted no window for StallTimeout while requests waited.
func Stalls() uint64 { return stalls.Load() }

// Liveness. A frozen target process (SIGSTOP, a stop-the-world pause, a
// wedged event loop) still has its TCP connections accepted and
// acknowledged by the kernel: nothing fails, answers just stop coming. A
// connection that holds requests and has read nothing for HangProbeAfter
// sends a PING; if nothing at all arrives within HangTimeout of it, the
// target is reported hung (Conns.OnHang), about a second after it froze.
// Its streams are left to finish or time out: a pause that ends in time
// costs no RPC. A connection hung for StallTimeout is given up.
//
// gRPC servers count PINGs that come while they send nothing as strikes
// and close connections that collect three (grpc-go's keepalive
// enforcement), so a connection sends one PING per silent spell: another
// only after the target has sent HEADERS or DATA since.
var (
	HangProbeAfter = 200 * time.Millisecond
	HangTimeout    = 600 * time.Millisecond
)

// livenessPing is the payload of liveness PINGs.
var livenessPing = [8]byte{'l', '7', 'l', 'b', 'l', 'i', 'v', 'e'}

// hangs counts targets reported hung.
var hangs atomic.Uint64

// Hangs reports how many times a target connection held requests and
// answered nothing, not even a PING, for HangTimeout.
func Hangs() uint64 { return hangs.Load() }

// Sink receives what a target sends on one stream. Calls come from the
// connection's reader goroutine, one at a time, and must not block: a
// Sink copies or forwards what it gets.
type Sink interface {
	// Headers delivers response headers, or trailers after them. Writers
	// the Sink appends to are woken through b (the reader's batch).
	Headers(fields []hpack.HeaderField, end bool, b *frameio.Batch)
	// Data delivers response bytes; p is only valid during the call. The
	// stream's window for them comes back only through Stream.Grant.
	Data(p []byte, end bool, b *frameio.Batch)
	// Reset ends the stream abnormally: code is the target's RST_STREAM
	// code, or err the connection failure. refused is true when the target
	// certainly did not process the request (a GOAWAY that excluded the
	// stream, REFUSED_STREAM, or a connection that never came up).
	Reset(code http2.ErrCode, err error, refused bool)
	// Sent reports request bytes that left l7lb toward the target (or
	// were dropped because the stream or connection ended), so the
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
	meter  *load.Meter

	// OnHang, when set, hears that a connection to the target held
	// requests and answered nothing, not even a PING, for HangTimeout.
	// It is called from a timer goroutine, with no lock held. Set it
	// before the first Open.
	OnHang func(err error)

	cur    atomic.Pointer[Conn]
	mu     sync.Mutex // slow path: replacing cur
	all    map[*Conn]struct{}
	closed bool
}

// NewConns prepares connections to addr (h2c, or h2 over TLS when
// secure). meter, when not nil, hears the target's load: a request in
// flight from its HEADERS until the stream ends on both sides or is
// reset, whichever way that happens, and the time from the HEADERS to
// the first response HEADERS.
func NewConns(addr string, secure bool, meter *load.Meter) *Conns {
	if meter == nil {
		meter = new(load.Meter)
	}
	return &Conns{addr: addr, secure: secure, meter: meter, dialer: &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}, all: map[*Conn]struct{}{}}
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
		if c == nil {
			var err error
			if c, err = cs.replace(); err != nil {
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
func (cs *Conns) replace() (*Conn, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return nil, ErrTargetClosed
	}
	if c := cs.cur.Load(); c != nil {
		return c, nil
	}
	c := newConn(cs)
	cs.all[c] = struct{}{}
	cs.cur.Store(c)
	return c, nil
}

// retire takes c out of use for new streams (it is full, out of stream
// IDs, or going away); it closes once its last stream ends.
func (cs *Conns) retire(c *Conn) {
	cs.cur.CompareAndSwap(c, nil)
	c.drain()
}

func (cs *Conns) forget(c *Conn) {
	cs.cur.CompareAndSwap(c, nil)
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
//
// Every field marked "under w's lock" changes in step with the frames the
// connection writes, so it shares the Writer's mutex (see frameio for the
// lock order). A stream ends in exactly one place, endLocked, whichever
// side or failure ends it.
type Conn struct {
	cs *Conns
	w  *frameio.Writer

	// Under w's lock:
	nextID      uint32
	streams     map[uint32]*Stream
	sendWin     int64 // connection-level window for request data
	initSendWin int64 // the target's SETTINGS_INITIAL_WINDOW_SIZE
	maxStreams  uint32
	blocked     []*Stream // streams with request data waiting for window
	goingAway   bool      // GOAWAY received or retired: no new streams
	dead        bool
	windowGrows int64       // connection WINDOW_UPDATEs received (stall check)
	stallTimer  *time.Timer // armed while streams wait for connection window
	live        liveness

	// recvWin is what the target may still send on the connection and
	// recvOwed what l7lb took off it and has not credited back yet; they
	// always add up to connRecvWindow (checked by tests through Flow).
	recvWin  atomic.Int64
	recvOwed atomic.Int64

	// framesRead and answersRead (HEADERS and DATA) count what the
	// reader took from the target; it publishes them before it blocks.
	framesRead, answersRead atomic.Uint64

	// reader goroutine
	rbuf  *bufio.Reader
	batch *frameio.Batch
}

// liveness is a connection's hang watch; under w's lock.
type liveness struct {
	timer       *time.Timer // armed while the connection holds streams
	frames      uint64      // framesRead at the last look
	pinged      bool        // a PING went out since the last frame arrived
	pingAt      time.Time
	answersPing uint64 // answersRead when the last PING went out
	everPinged  bool
	hung        bool
}

func newConn(cs *Conns) *Conn {
	c := &Conn{cs: cs, nextID: 1, streams: map[uint32]*Stream{}, sendWin: 65535, initSendWin: 65535, maxStreams: 1 << 31}
	c.recvWin.Store(connRecvWindow)
	c.w = frameio.NewWriter(nil)
	c.w.WriteTimeout = StallTimeout
	c.w.OnError = func(err error) { c.fail(fmt.Errorf("write to target %s: %w", cs.addr, err), false) }
	// The preface and settings go first, before any stream's frames.
	c.w.Lock()
	c.w.AppendRaw([]byte(http2.ClientPreface))
	c.w.AppendSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: StreamWindowFloor},
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

// open registers and starts a stream; false if the connection cannot take
// it.
func (c *Conn) open(s *Stream, sink Sink, encode HeaderEncoder, end bool, b *frameio.Batch) bool {
	c.w.Lock()
	if c.goingAway || c.dead || c.w.Closed() || uint32(len(c.streams)) >= c.maxStreams || c.nextID >= 1<<30 {
		c.w.Unlock()
		return false
	}
	*s = Stream{c: c, id: c.nextID, sink: sink, sendWin: c.initSendWin, endSent: end, recvWin: StreamWindowFloor, start: time.Now()}
	c.nextID += 2
	c.streams[s.id] = s
	c.cs.meter.Start()
	if c.live.timer == nil {
		c.live.frames = c.framesRead.Load()
		c.live.timer = time.AfterFunc(HangProbeAfter, c.checkLive)
	}
	encode(s, c.w)
	c.w.AppendHeaders(s.id, end)
	c.w.Unlock()
	b.Kick(c.w)
	return true
}

// endLocked is where every stream ends: it leaves the map, its waiting
// request bytes are dropped and reported to the sink as gone (so the
// client gets their window back), and the target's in-flight count drops.
// The caller holds w's lock and calls the returned function after
// releasing it (nil when there is nothing to do).
func (c *Conn) endLocked(s *Stream) (after func()) {
	if s.done {
		return nil
	}
	s.done = true
	delete(c.streams, s.id)
	c.cs.meter.Done()
	dropped := len(s.pending)
	s.pending, s.pendingEnd = nil, false
	// A blocked stream stays in c.blocked until the next flush skips it.
	idle := c.goingAway && len(c.streams) == 0 && !c.dead
	if dropped == 0 && !idle {
		return nil
	}
	return func() {
		if dropped > 0 {
			s.sink.Sent(dropped)
		}
		if idle {
			c.closeIfDrained()
		}
	}
}

func run(f func()) {
	if f != nil {
		f()
	}
}

// drain stops new streams and closes the connection once idle.
func (c *Conn) drain() {
	c.w.Lock()
	c.goingAway = true
	c.w.Unlock()
	c.closeIfDrained()
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
	var afters []func()
	for _, s := range c.streams {
		streams = append(streams, s)
		if f := c.endLocked(s); f != nil {
			afters = append(afters, f)
		}
	}
	c.blocked = nil
	if c.stallTimer != nil {
		c.stallTimer.Stop()
	}
	if c.live.timer != nil {
		c.live.timer.Stop()
	}
	c.w.Unlock()
	c.w.Close()
	c.cs.forget(c)
	for _, f := range afters {
		f()
	}
	for _, s := range streams {
		s.sink.Reset(0, err, refused)
	}
}

// read is the connection's reader goroutine.
func (c *Conn) read(nc net.Conn) {
	c.rbuf = bufio.NewReaderSize(nc, 64<<10)
	c.batch = &frameio.Batch{}
	defer c.batch.Flush()
	frames := frameio.NewReader(c.rbuf, 1<<24, 1<<20)
	var nFrames, nAnswers uint64
	for {
		if c.rbuf.Buffered() == 0 {
			c.batch.Flush() // about to block: wake the writers we fed
			c.framesRead.Store(nFrames)
			c.answersRead.Store(nAnswers)
		}
		kind, f, err := frames.Next()
		nFrames++
		if err == nil {
			switch kind {
			case frameio.HeaderBlock:
				nAnswers++
				err = c.headerBlock(frames.Headers)
			case frameio.WindowUpdateFrame:
				err = c.windowUpdate(frames.Window)
			case frameio.PingFrame:
				if !frames.Ping.Ack {
					c.w.Lock()
					ok := c.w.AppendPing(true, frames.Ping.Data)
					c.w.Unlock()
					c.batch.Kick(c.w)
					if !ok {
						err = fmt.Errorf("target %s sent more PINGs than it reads answers to", c.cs.addr)
					}
				}
			case frameio.OtherFrame:
				if _, ok := f.(*http2.DataFrame); ok {
					nAnswers++
				}
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
		if !s.answered {
			s.answered = true
			c.cs.meter.Observe(time.Since(s.start))
		}
		s.sink.Headers(hr.Fields(), end, c.batch)
		if end {
			c.endRecv(s)
		}
	}
	return nil
}

// windowUpdate adds a WINDOW_UPDATE's credit and sends what it unblocks.
func (c *Conn) windowUpdate(f frameio.WindowUpdate) error {
	c.w.Lock()
	var sent []func()
	if f.StreamID == 0 {
		c.sendWin += int64(f.Increment)
		if c.sendWin > maxWindow {
			c.w.Unlock()
			return fmt.Errorf("target %s overflowed the connection window (RFC 9113 §6.9.1)", c.cs.addr)
		}
		c.windowGrows++
		sent = c.flushBlockedLocked()
	} else if s := c.streams[f.StreamID]; s != nil {
		s.sendWin += int64(f.Increment)
		if s.sendWin > maxWindow {
			after := c.resetLocked(s, http2.ErrCodeFlowControl)
			c.w.Unlock()
			c.batch.Kick(c.w)
			run(after)
			s.sink.Reset(http2.ErrCodeFlowControl, fmt.Errorf("target %s overflowed a stream window", c.cs.addr), false)
			return nil
		}
		if len(s.pending) > 0 || s.pendingEnd {
			sent = c.flushBlockedLocked()
		}
	}
	c.w.Unlock()
	c.batch.Kick(c.w)
	runAll(sent)
	return nil
}

// resetLocked sends RST_STREAM for s and ends it; under w's lock.
func (c *Conn) resetLocked(s *Stream, code http2.ErrCode) (after func()) {
	if s.done {
		return nil
	}
	if !c.w.AppendRST(s.id, code) && !c.w.Closed() {
		// The target let too many control frames pile up unread.
		c.w.CloseAfterFlushLocked()
	}
	return c.endLocked(s)
}

func (c *Conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.data(f)
	case *http2.RSTStreamFrame:
		c.w.Lock()
		s := c.streams[f.StreamID]
		var after func()
		if s != nil {
			after = c.endLocked(s)
		}
		c.w.Unlock()
		if s != nil {
			run(after)
			s.sink.Reset(f.ErrCode, nil, f.ErrCode == http2.ErrCodeRefusedStream)
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := f.ForeachSetting(func(st http2.Setting) error { return st.Valid() }); err != nil {
			return fmt.Errorf("target %s sent invalid SETTINGS: %w", c.cs.addr, err)
		}
		c.w.Lock()
		var err error
		f.ForeachSetting(func(st http2.Setting) error {
			switch st.ID {
			case http2.SettingInitialWindowSize:
				delta := int64(st.Val) - c.initSendWin
				c.initSendWin = int64(st.Val)
				for _, s := range c.streams {
					s.sendWin += delta
					if s.sendWin > maxWindow {
						err = fmt.Errorf("target %s: SETTINGS_INITIAL_WINDOW_SIZE overflowed a stream window", c.cs.addr)
					}
				}
			case http2.SettingMaxFrameSize:
				c.w.MaxFrame = int(st.Val)
			case http2.SettingMaxConcurrentStreams:
				c.maxStreams = st.Val
			case http2.SettingHeaderTableSize:
				c.w.Enc.SetPeerLimit(st.Val)
			}
			return nil
		})
		if err != nil {
			c.w.Unlock()
			return err
		}
		if !c.w.AppendSettingsAck() {
			c.w.Unlock()
			return fmt.Errorf("target %s sent more SETTINGS than it reads answers to", c.cs.addr)
		}
		sent := c.flushBlockedLocked()
		c.w.Unlock()
		c.batch.Kick(c.w)
		runAll(sent)
	case *http2.GoAwayFrame:
		// Streams above LastStreamID were never processed: refused.
		c.w.Lock()
		c.goingAway = true
		var refused []*Stream
		var afters []func()
		for id, s := range c.streams {
			if id > f.LastStreamID {
				refused = append(refused, s)
				if a := c.endLocked(s); a != nil {
					afters = append(afters, a)
				}
			}
		}
		c.w.Unlock()
		c.cs.retire(c)
		for _, a := range afters {
			a()
		}
		for _, s := range refused {
			s.sink.Reset(http2.ErrCodeRefusedStream, fmt.Errorf("target %s is going away (GOAWAY %v)", c.cs.addr, f.ErrCode), true)
		}
	}
	return nil
}

// data takes response DATA. The connection window is credited at once
// (see connRecvWindow); the stream's window must cover the frame.
func (c *Conn) data(f *http2.DataFrame) error {
	length := int64(f.Length)
	if c.recvWin.Add(-length) < 0 {
		return fmt.Errorf("target %s sent more than the connection window (RFC 9113 §6.9)", c.cs.addr)
	}
	c.credit(length)
	c.w.Lock()
	s := c.streams[f.StreamID]
	over := false
	if s != nil {
		s.recvWin -= length
		over = s.recvWin < 0
	}
	var after func()
	if over {
		after = c.resetLocked(s, http2.ErrCodeFlowControl)
	}
	c.w.Unlock()
	if s == nil {
		return nil // a stream l7lb ended: its bytes were credited above
	}
	if over {
		c.batch.Kick(c.w)
		run(after)
		s.sink.Reset(http2.ErrCodeFlowControl, fmt.Errorf("target %s sent more than the stream window", c.cs.addr), false)
		return nil
	}
	end := f.StreamEnded()
	s.sink.Data(f.Data(), end, c.batch)
	if end {
		c.endRecv(s)
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
	var after func()
	switch {
	case s.done:
	case s.endSent && len(s.pending) == 0:
		after = c.endLocked(s)
	default:
		// The target answered before the whole request was sent (an early
		// error): stop the upload.
		after = c.resetLocked(s, http2.ErrCodeCancel)
	}
	c.w.Unlock()
	c.batch.Kick(c.w)
	run(after)
}

func (c *Conn) closeIfDrained() {
	c.w.Lock()
	idle := c.goingAway && len(c.streams) == 0 && !c.dead
	if idle {
		c.dead = true
		if c.stallTimer != nil {
			c.stallTimer.Stop()
		}
	}
	c.w.Unlock()
	if idle {
		c.w.CloseAfterFlush()
		c.cs.forget(c)
	}
}

// credit returns n bytes of connection-level window to the target, a
// quarter of the window at a time.
func (c *Conn) credit(n int64) {
	if n <= 0 {
		return
	}
	if owed := c.recvOwed.Add(n); owed >= connRecvWindow/4 {
		c.w.Lock()
		if c.w.AppendWindowUpdate(0, uint32(owed)) {
			c.recvOwed.Add(-owed)
			c.recvWin.Add(owed)
		} else if !c.w.Closed() {
			c.w.CloseAfterFlushLocked()
		}
		c.w.Unlock()
		c.batch.Kick(c.w)
	}
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// flushBlockedLocked sends what the windows allow of each blocked stream's
// waiting request data; under w's lock. Bytes it appends are reported to
// the sink when written (Stream.Credit). It returns what the caller runs
// after unlocking for streams that thereby ended.
func (c *Conn) flushBlockedLocked() (afters []func()) {
	blocked := c.blocked
	c.blocked = nil
	for _, s := range blocked {
		if s.done || (len(s.pending) == 0 && !s.pendingEnd) {
			continue
		}
		s.sendPendingLocked()
		if len(s.pending) > 0 || s.pendingEnd {
			c.blocked = append(c.blocked, s)
		} else if f := s.finishedLocked(); f != nil {
			afters = append(afters, f)
		}
	}
	c.watchStallLocked()
	return afters
}

// watchStallLocked arms the stall timer, once, while streams wait with
// the connection window at zero; under w's lock. An armed timer is left
// alone: re-arming it for each newly blocked stream would postpone the
// check for as long as requests keep coming.
func (c *Conn) watchStallLocked() {
	if len(c.blocked) == 0 || c.sendWin > 0 || c.dead || c.stallTimer != nil {
		return
	}
	mark := c.windowGrows
	c.stallTimer = time.AfterFunc(StallTimeout, func() { c.checkStall(mark) })
}

// checkStall gives the connection up if the target granted no window
// since mark while requests waited: a freeze is never silent. Its streams
// fail with UNAVAILABLE (or are retried where that is safe).
func (c *Conn) checkStall(mark int64) {
	c.w.Lock()
	c.stallTimer = nil
	stalled := !c.dead && len(c.blocked) > 0 && c.sendWin <= 0 && c.windowGrows == mark
	if !stalled {
		c.watchStallLocked() // still waiting, but the target moved: watch again
	}
	c.w.Unlock()
	if stalled {
		stalls.Add(1)
		c.fail(fmt.Errorf("target %s granted no flow-control window for %v while requests waited", c.cs.addr, StallTimeout), false)
	}
}

// checkLive is the hang watch's tick (see HangProbeAfter). It re-arms
// itself while the connection holds streams.
func (c *Conn) checkLive() {
	c.w.Lock()
	l := &c.live
	if c.dead || len(c.streams) == 0 {
		l.timer, l.pinged, l.hung = nil, false, false
		c.w.Unlock()
		return
	}
	var hungErr, giveUp error
	kick := false
	now := time.Now()
	switch frames := c.framesRead.Load(); {
	case frames != l.frames:
		// The target sent something: alive.
		l.frames, l.pinged, l.hung = frames, false, false
	case !l.pinged:
		if answers := c.answersRead.Load(); !l.everPinged || answers != l.answersPing {
			if c.w.AppendPing(false, livenessPing) {
				l.pinged, l.everPinged, l.pingAt, l.answersPing = true, true, now, answers
				kick = true
			}
		}
	case !l.hung && now.Sub(l.pingAt) >= HangTimeout:
		l.hung = true
		hungErr = fmt.Errorf("target %s answered nothing, not even a PING, for %v while it held %d requests", c.cs.addr, now.Sub(l.pingAt).Round(time.Millisecond), len(c.streams))
	case l.hung && now.Sub(l.pingAt) >= StallTimeout:
		giveUp = fmt.Errorf("target %s answered nothing for %v while it held requests", c.cs.addr, StallTimeout)
	}
	l.timer = time.AfterFunc(HangProbeAfter, c.checkLive)
	c.w.Unlock()
	if kick {
		c.w.Kick()
	}
	if hungErr != nil {
		hangs.Add(1)
		if f := c.cs.OnHang; f != nil {
			f(hungErr)
		}
	}
	if giveUp != nil {
		c.fail(giveUp, false)
	}
}

// Stream is the target side of one forwarded request.
type Stream struct {
	c    *Conn
	id   uint32
	sink Sink

	// Under c.w's lock:
	sendWin    int64
	recvWin    int64  // what the target may still send on the stream
	pending    []byte // request data waiting for window
	pendingEnd bool
	endSent    bool
	recvEnded  bool
	done       bool
	start      time.Time // when its HEADERS were queued

	answered bool // reader goroutine: response HEADERS seen (latency taken)
}

// ID is the stream's identifier on its connection.
func (s *Stream) ID() uint32 { return s.id }

// Target is the address the stream went to.
func (s *Stream) Target() string { return s.c.cs.addr }

// Credit implements frameio.Creditor: request bytes the writer no longer
// holds are reported to the sink.
func (s *Stream) Credit(n int) { s.sink.Sent(n) }

// sendPendingLocked writes pending data within the windows; under the
// lock.
func (s *Stream) sendPendingLocked() {
	c := s.c
	n := int(max(0, min(int64(len(s.pending)), s.sendWin, c.sendWin)))
	if n == 0 && !(len(s.pending) == 0 && s.pendingEnd) {
		return
	}
	end := s.pendingEnd && n == len(s.pending)
	if !c.w.AppendData(s.id, s.pending[:n], end, s) {
		return // the connection is closing; fail ends the stream
	}
	s.sendWin -= int64(n)
	c.sendWin -= int64(n)
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	if end {
		s.endSent = true
		s.pendingEnd = false
	}
}

// finishedLocked ends a stream whose both directions ended; under lock.
func (s *Stream) finishedLocked() (after func()) {
	if s.endSent && s.recvEnded && len(s.pending) == 0 {
		return s.c.endLocked(s)
	}
	return nil
}

// Data sends request bytes (copied); end closes the request side. Bytes
// the windows do not allow yet wait in l7lb and go out as the target
// grants window; Sink.Sent reports each part once it left through the
// socket, or was dropped because the stream or connection ended.
func (s *Stream) Data(p []byte, end bool, b *frameio.Batch) {
	c := s.c
	c.w.Lock()
	if s.done || s.endSent || s.pendingEnd {
		c.w.Unlock()
		if len(p) > 0 {
			s.sink.Sent(len(p)) // nothing will send them
		}
		return
	}
	if len(s.pending) == 0 {
		n := int(max(0, min(int64(len(p)), s.sendWin, c.sendWin)))
		if n > 0 || (len(p) == 0 && end) {
			fin := end && n == len(p)
			if c.w.AppendData(s.id, p[:n], fin, s) {
				s.sendWin -= int64(n)
				c.sendWin -= int64(n)
				p = p[n:]
				if fin {
					s.endSent = true
				}
			}
		}
	}
	if len(p) > 0 || (end && !s.endSent) {
		wasBlocked := len(s.pending) > 0 || s.pendingEnd
		s.pending = append(s.pending, p...)
		s.pendingEnd = end
		if !wasBlocked {
			c.blocked = append(c.blocked, s)
			c.watchStallLocked()
		}
	}
	after := s.finishedLocked()
	c.w.Unlock()
	b.Kick(c.w)
	run(after)
}

// Cancel resets the stream toward the target (the client reset it, or
// l7lb gave up on it).
func (s *Stream) Cancel(code http2.ErrCode) {
	c := s.c
	c.w.Lock()
	after := c.resetLocked(s, code)
	c.w.Unlock()
	c.w.Kick()
	run(after)
}

// Grant lets the target send n more response bytes on the stream: the
// client side calls it as bytes leave toward the client, and to widen the
// window beyond StreamWindowFloor. It does nothing once the response
// ended.
func (s *Stream) Grant(n int) {
	if n <= 0 {
		return
	}
	c := s.c
	c.w.Lock()
	ok := true
	if !s.recvEnded && !s.done && s.recvWin+int64(n) <= maxWindow {
		if ok = c.w.AppendWindowUpdate(s.id, uint32(n)); ok {
			s.recvWin += int64(n)
		}
	}
	if !ok && !c.w.Closed() {
		c.w.CloseAfterFlushLocked()
	}
	c.w.Unlock()
	c.w.Kick()
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
			RecvWindow: c.recvWin.Load() + c.recvOwed.Load(), RecvWindowInitial: connRecvWindow,
			Queued: c.w.Buffered(),
			Usable: !c.goingAway && !c.dead,
		}
		c.w.Unlock()
		out = append(out, f)
	}
	return out
}
