package h2proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/l7lb/l7lb/internal/frameio"
	"github.com/l7lb/l7lb/internal/idlepark"
	"github.com/l7lb/l7lb/internal/mtls"
)

// serverConn is one client connection. Its reader goroutine (serve) owns
// the fields marked "reader"; everything about sending to the client is
// under the frame writer's lock, which the target-side goroutines take
// too when they forward responses.
type serverConn struct {
	srv        *Server
	conn       net.Conn
	w          *frameio.Writer
	cond       *sync.Cond // on w's lock: bridged handlers waiting for window
	tlsState   *tls.ConnectionState
	clientIP   string
	clientAddr string
	// mtls are the connection's X-Amzn-Mtls-* headers, added to every
	// request forwarded (nil: none); set before serve, then read only.
	mtls []mtls.Header
	// clientNetIP is clientIP parsed, for source-ip conditions.
	clientNetIP netip.Addr

	// done is called once, when the connection is over (see
	// Server.ServeConnAsync).
	done func()

	// reader
	first     bool // the next frame is the client's first
	frames    *frameio.Reader
	batch     *frameio.Batch
	br        *bufio.Reader // nil while parked
	src       bufSource     // what frames reads: br, whichever it is now
	bufSize   int
	parkable  syscall.RawConn // the socket under TLS, when it can park
	req       request
	pings     floodCounter
	settings  floodCounter
	resets    floodCounter
	emptyData floodCounter
	priority  floodCounter

	// under w's lock
	lastID      uint32
	streams     map[uint32]*stream
	sendWin     int64
	initSendWin int64
	blocked     []*stream // streams with response data waiting for window
	goingAway   bool      // final GOAWAY sent: new streams are refused
	draining    bool      // first GOAWAY of a graceful close sent
	idleTimer   *time.Timer
	// respGranted is the response window targets hold for this
	// connection's streams, at most Limits.ConnBuffer beyond each
	// stream's floor (see stream.respGrant).
	respGranted int64
	dataSent    int64       // response DATA bytes appended (stall check)
	stallTimer  *time.Timer // armed while streams wait for the client's window

	recvOwed atomic.Int64 // connection-level window owed to the client
	// recvWin is how much the client may still send on the connection; it
	// grows as window is given back (from any goroutine).
	recvWin atomic.Int64
}

func newServerConn(s *Server, c net.Conn) *serverConn {
	sc := &serverConn{
		srv:         s,
		conn:        c,
		w:           frameio.NewWriter(c),
		streams:     map[uint32]*stream{},
		sendWin:     65535,
		initSendWin: 65535,
	}
	sc.recvWin.Store(connRecvWindow)
	sc.cond = sc.w.NewCond()
	sc.w.WriteTimeout = s.opts.Limits.WriteStall
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		sc.tlsState = &st
	}
	sc.clientAddr = c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(sc.clientAddr); err == nil {
		sc.clientIP = host
		if a, err := netip.ParseAddr(host); err == nil {
			sc.clientNetIP = a.Unmap()
		}
	}
	return sc
}

// floodCounter counts events in one-second windows.
type floodCounter struct {
	start time.Time
	n     int
	base  int64 // allowance counter at the window's start
}

func (f *floodCounter) hit(now time.Time) bool { return f.hitAllowing(now, 0) }

// hitAllowing counts one event and reports whether the window's events
// exceed the limit plus the growth of allowance during the window.
func (f *floodCounter) hitAllowing(now time.Time, allowance int64) bool {
	if now.Sub(f.start) > time.Second {
		f.start, f.n, f.base = now, 0, allowance
	}
	f.n++
	return int64(f.n) > floodLimitPerSecond+allowance-f.base
}

// connError ends the connection with GOAWAY(code).
type connError struct {
	code  http2.ErrCode
	debug string
}

func (e connError) Error() string {
	return "http2: connection error " + e.code.String() + ": " + e.debug
}

func (sc *serverConn) serve() {
	// Over TLS the buffer is small: crypto/tls holds the decrypted record
	// anyway, and an idle connection would keep this buffer for as long
	// as it stays open. A raw TCP connection wants a large one: one read
	// syscall for many frames.
	sc.bufSize = 64 << 10
	if tc, ok := sc.conn.(*tls.Conn); ok {
		sc.bufSize = 512
		if s, ok := tc.NetConn().(syscall.Conn); ok {
			if rc, err := s.SyscallConn(); err == nil {
				sc.parkable = rc
			}
		}
	}
	sc.br = getBufReader(sc.conn, sc.bufSize)
	sc.src.sc = sc
	br := sc.br
	sc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		sc.w.Lock()
		sc.w.AppendGoAway(0, http2.ErrCodeProtocol, "invalid connection preface")
		sc.w.Unlock()
		sc.w.Start(nil, nil)
		sc.w.CloseAfterFlush()
		sc.w.Wait(time.Second)
		sc.end()
		return
	}
	sc.conn.SetReadDeadline(time.Time{})

	sc.w.Lock()
	sc.w.AppendSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: maxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamRecvWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	)
	sc.w.AppendWindowUpdate(0, connRecvWindow-65535)
	sc.armIdleLocked()
	sc.w.Unlock()
	sc.w.OnError = func(error) { sc.closeConn() }
	sc.w.BeforeClose = sc.unpark
	sc.w.Start(nil, nil)
	sc.w.Kick()

	sc.frames = frameio.NewReader(&sc.src, 16384, maxHeaderListSize) // 16384: the default frame size we advertise
	sc.batch = &frameio.Batch{}
	sc.first = true
	sc.readLoop()
}

// readLoop reads and handles frames until the connection ends (then it
// settles everything) or parks (then Wake starts it again).
func (sc *serverConn) readLoop() {
	if sc.readFrames() {
		return // parked
	}
	sc.end()
}

// end settles a finished connection, once.
func (sc *serverConn) end() {
	sc.closeAll()
	if sc.br != nil {
		putBufReader(sc.br, sc.bufSize)
		sc.br = nil
	}
	if sc.done != nil {
		sc.done()
	}
}

// readFrames is the reader's loop; it reports whether it parked.
func (sc *serverConn) readFrames() (parked bool) {
	for {
		if sc.br.Buffered() == 0 {
			sc.batch.Flush() // about to block: wake the writers we fed
		}
		sc.src.boundary = true
		kind, f, err := sc.frames.Next()
		sc.src.boundary = false
		if sc.src.nudged {
			// The idle deadline passed between frames (nothing of the
			// next one read): park if still idle, else read on.
			sc.src.nudged = false
			sc.conn.SetReadDeadline(time.Time{})
			if sc.park() {
				return true
			}
			continue
		}
		if err == nil {
			if sc.first {
				sc.first = false
				if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
					err = connError{http2.ErrCodeProtocol, "first frame is not SETTINGS"}
				}
			}
			if err == nil {
				switch kind {
				case frameio.HeaderBlock:
					err = sc.onHeaders()
				case frameio.WindowUpdateFrame:
					err = sc.onWindowUpdate(sc.frames.Window)
				case frameio.PingFrame:
					err = sc.onPing(sc.frames.Ping)
				case frameio.OtherFrame:
					err = sc.process(f)
				}
			}
		}
		if err == nil {
			continue
		}
		var se http2.StreamError
		switch {
		case errors.As(err, &se):
			sc.streamError(se.StreamID, se.Code)
			continue
		case errors.Is(err, http2.ErrFrameTooLarge):
			err = connError{http2.ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE"}
		}
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			detail := ""
			if d := sc.frames.Framer.ErrorDetail(); d != nil {
				detail = d.Error()
			}
			err = connError{http2.ErrCode(ce), detail}
		}
		var cerr connError
		if errors.As(err, &cerr) {
			sc.w.Lock()
			sc.w.AppendGoAway(sc.lastID, cerr.code, cerr.debug)
			sc.w.Unlock()
			sc.w.CloseAfterFlush()
			sc.w.Wait(time.Second)
		}
		sc.batch.Flush()
		return false
	}
}

// streamError resets one stream after a malformed frame on it.
func (sc *serverConn) streamError(id uint32, code http2.ErrCode) {
	sc.w.Lock()
	if id > sc.lastID && id%2 == 1 {
		// A stream the frame tried to open is closed from now on.
		sc.lastID = id
	}
	st := sc.streams[id]
	sc.w.AppendRST(id, code)
	if st != nil {
		st.respDone, st.reqDone = true, true
		sc.removeLocked(st)
	}
	sc.w.Unlock()
	sc.w.Kick()
	if st != nil {
		st.abortUpstream(http2.ErrCodeCancel)
	}
}

func (sc *serverConn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return sc.onData(f)
	case *http2.RSTStreamFrame:
		return sc.onReset(f)
	case *http2.SettingsFrame:
		return sc.onSettings(f)
	case *http2.PriorityFrame:
		if f.StreamID == f.StreamDep {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		if sc.priority.hit(time.Now()) {
			return connError{http2.ErrCodeEnhanceYourCalm, "too many PRIORITY frames"}
		}
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "PUSH_PROMISE from a client"}
	case *http2.GoAwayFrame:
		// The client will open no more streams. The connection stays
		// usable for what is in flight (and for PINGs) until the client
		// closes it, or the idle timer does.
		return nil
	}
	return nil
}

func (sc *serverConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if sc.settings.hit(time.Now()) {
		return connError{http2.ErrCodeEnhanceYourCalm, "too many SETTINGS frames"}
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	sc.w.Lock()
	defer func() { sc.w.Unlock(); sc.w.Kick() }()
	var err error
	f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - sc.initSendWin
			sc.initSendWin = int64(s.Val)
			for _, st := range sc.streams {
				st.sendWin += delta
				if st.sendWin > 1<<31-1 {
					err = connError{http2.ErrCodeFlowControl, "window overflow"}
				}
			}
			sc.drainLocked(sc.streamsSlice())
		case http2.SettingMaxFrameSize:
			sc.w.MaxFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			sc.w.Enc.SetPeerLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !sc.w.AppendSettingsAck() {
		return connError{http2.ErrCodeEnhanceYourCalm, "too many frames waiting for a reader"}
	}
	sc.cond.Broadcast()
	return nil
}

func (sc *serverConn) streamsSlice() []*stream {
	out := make([]*stream, 0, len(sc.streams))
	for _, st := range sc.streams {
		out = append(out, st)
	}
	return out
}

func (sc *serverConn) onPing(f frameio.Ping) error {
	if f.Ack {
		if f.Data == drainPing {
			sc.finalGoAway()
		}
		return nil
	}
	// gRPC clients send a PING for bandwidth estimation after data
	// arrives, so each DATA or HEADERS frame l7lb sends earns one; a
	// flood on a connection carrying no traffic does not.
	if sc.pings.hitAllowing(time.Now(), sc.w.Sent.Load()) {
		return connError{http2.ErrCodeEnhanceYourCalm, "too many PING frames"}
	}
	sc.w.Lock()
	ok := sc.w.AppendPing(true, f.Data)
	sc.w.Unlock()
	sc.w.Kick()
	if !ok {
		return connError{http2.ErrCodeEnhanceYourCalm, "too many frames waiting for a reader"}
	}
	return nil
}

func (sc *serverConn) onWindowUpdate(f frameio.WindowUpdate) error {
	sc.w.Lock()
	if f.StreamID == 0 {
		sc.sendWin += int64(f.Increment)
		if sc.sendWin > 1<<31-1 {
			sc.w.Unlock()
			return connError{http2.ErrCodeFlowControl, "connection window overflow"}
		}
		blocked := sc.blocked
		sc.blocked = nil
		sc.drainLocked(blocked)
	} else {
		if f.StreamID > sc.lastID {
			sc.w.Unlock()
			return connError{http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream"}
		}
		if st := sc.streams[f.StreamID]; st != nil {
			st.sendWin += int64(f.Increment)
			if st.sendWin > 1<<31-1 {
				sc.w.Unlock()
				return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
			}
			if len(st.pending) > 0 || st.pendingEnd || st.pendingTrailers != nil {
				sc.drainLocked([]*stream{st})
			}
		}
	}
	sc.cond.Broadcast()
	sc.w.Unlock()
	sc.w.Kick()
	return nil
}

func (sc *serverConn) onReset(f *http2.RSTStreamFrame) error {
	sc.w.Lock()
	if f.StreamID > sc.lastID {
		sc.w.Unlock()
		return connError{http2.ErrCodeProtocol, "RST_STREAM on an idle stream"}
	}
	st := sc.streams[f.StreamID]
	now := time.Now()
	rapid, missed := false, false
	if st != nil {
		if !st.respDone {
			st.rpc.Reset, st.rpc.ResetBy = uint32(f.ErrCode), "client"
		}
		rapid = !st.respHeaders && now.Sub(st.rpc.Start) < rapidReset
		// A client gives up at its deadline with a reset: when no answer
		// had started, that is the target missing it.
		missed = !st.respHeaders && !st.respDone && !st.deadlineAt.IsZero() && now.After(st.deadlineAt.Add(-deadlineSlack))
		st.respDone, st.reqDone = true, true
		sc.removeLocked(st)
	}
	sc.w.Unlock()
	if st == nil {
		return nil
	}
	// A client resetting streams it just opened, over and over, makes
	// targets do work for nothing while the concurrency limit never
	// binds (CVE-2023-44487). Only that pattern counts: a stream reset
	// before any response and within rapidReset of its start. Cancels of
	// RPCs that ran a while (deadlines, abandoned streams) are ordinary:
	// those streams held a concurrency slot, which bounds their rate.
	if rapid && sc.resets.hit(now) {
		st.abortUpstream(http2.ErrCodeCancel)
		return connError{http2.ErrCodeEnhanceYourCalm, "too many streams reset"}
	}
	if missed {
		st.missedDeadline()
	}
	st.abortUpstream(f.ErrCode)
	return nil
}

func (sc *serverConn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	data := f.Data()
	length := int64(f.Length)
	if sc.recvWin.Add(-length) < 0 {
		return connError{http2.ErrCodeFlowControl, "client sent more than the connection window"}
	}
	if len(data) == 0 && !f.StreamEnded() && sc.emptyData.hit(time.Now()) {
		return connError{http2.ErrCodeEnhanceYourCalm, "too many empty DATA frames"}
	}
	// Padding is never forwarded: its window comes back at once.
	sc.creditConn(int(length) - len(data))

	end := f.StreamEnded()
	sc.w.Lock()
	st := sc.streams[id]
	lastID := sc.lastID
	var streamErr http2.ErrCode = 0xff
	if st != nil {
		switch {
		case st.reqDone:
			streamErr = http2.ErrCodeStreamClosed
		case st.recvWin-length < 0:
			streamErr = http2.ErrCodeFlowControl
		default:
			st.recvWin -= length
			st.reqHeld += int64(len(data))
			st.received += int64(len(data))
			st.rpc.BytesIn += int64(len(data))
			if st.contentLength >= 0 && (st.received > st.contentLength || end && st.received != st.contentLength) {
				streamErr = http2.ErrCodeProtocol
			} else if end {
				st.reqDone = true
			}
		}
	}
	sc.w.Unlock()
	if st == nil {
		sc.creditConn(len(data))
		if id > lastID {
			return connError{http2.ErrCodeProtocol, "DATA on an idle stream"}
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if streamErr != 0xff {
		sc.creditConn(len(data)) // never counted as the stream's
		return http2.StreamError{StreamID: id, Code: streamErr}
	}
	st.requestData(data, end)
	return nil
}

// creditConn returns connection-level window to the client for bytes no
// stream holds.
func (sc *serverConn) creditConn(n int) {
	if n <= 0 {
		return
	}
	sc.w.Lock()
	kick := sc.creditConnLocked(int64(n))
	sc.w.Unlock()
	if kick {
		sc.w.Kick()
	}
}

// creditConnLocked owes the client n bytes of connection window and sends
// a WINDOW_UPDATE once a quarter of the window is owed; under w's lock.
// It reports whether a frame was appended (the caller kicks the writer).
func (sc *serverConn) creditConnLocked(n int64) bool {
	if n <= 0 {
		return false
	}
	owed := sc.recvOwed.Add(n)
	if owed < connRecvWindow/4 {
		return false
	}
	if !sc.w.AppendWindowUpdate(0, uint32(owed)) {
		sc.failWriterLocked()
		return false
	}
	sc.recvOwed.Add(-owed)
	sc.recvWin.Add(owed)
	return true
}

// failWriterLocked gives up a connection whose client let too many
// frames pile up unread (an append failed): the writer stops, the
// connection closes, and the reader's end settles every stream.
func (sc *serverConn) failWriterLocked() {
	if !sc.w.Closed() {
		sc.w.CloseAfterFlushLocked()
	}
	go sc.closeConn()
}

// removeLocked forgets a finished stream; under w's lock. It is the one
// place a client stream ends, and it gives back everything the stream
// still holds: request bytes not yet credited go back to the client's
// connection window, the response window its targets held goes back to
// the connection's budget, and waiting response bytes are dropped (the
// target connection credited them on arrival; the target stream is
// reset or ended).
func (sc *serverConn) removeLocked(st *stream) {
	if st.removed {
		return
	}
	st.removed = true
	delete(sc.streams, st.id)
	st.rpc.End = time.Now()
	sc.srv.opts.Observer.RPCDone(&st.rpc)
	st.pending = nil
	st.pendingTrailers = nil
	if st.timer != nil {
		st.timer.Stop()
	}
	if st.reqHeld > 0 {
		if sc.creditConnLocked(st.reqHeld) {
			sc.w.Kick()
		}
		st.reqHeld = 0
	}
	sc.respGranted -= st.respGrant
	st.respGrant = 0
	if st.bridge != nil {
		st.bridge.cancel()
		sc.cond.Broadcast() // a bridged Write waiting for window gives up
	}
	if len(sc.streams) == 0 {
		if sc.goingAway {
			sc.w.CloseAfterFlushLocked()
		} else {
			sc.armIdleLocked()
		}
	}
}

// armIdleLocked starts the idle timer; under w's lock. The writer may
// park its goroutine until the next frame.
func (sc *serverConn) armIdleLocked() {
	sc.w.SetIdleLocked(true)
	if sc.parkable != nil && !sc.srv.opts.NoParking {
		sc.conn.SetReadDeadline(time.Now().Add(parkAfter)) // a nudge to park; see bufSource
	}
	if sc.idleTimer == nil {
		sc.idleTimer = time.AfterFunc(sc.srv.opts.IdleTimeout, sc.idle)
		return
	}
	sc.idleTimer.Reset(sc.srv.opts.IdleTimeout)
}

func (sc *serverConn) idle() {
	sc.w.Lock()
	if len(sc.streams) > 0 || sc.goingAway || sc.draining {
		sc.w.Unlock()
		return
	}
	sc.goingAway = true
	sc.w.AppendGoAway(sc.lastID, http2.ErrCodeNo, "idle")
	sc.w.CloseAfterFlushLocked()
	sc.w.Unlock()
	sc.w.Kick()
}

// drainPing is the PING payload of a graceful close's first phase.
var drainPing = [8]byte{'l', '7', 'l', 'b', 'd', 'r', 'a', 'i'}

// goAway starts a graceful close in two phases (RFC 9113 §6.8): a GOAWAY
// with the largest stream ID tells the client to stop opening streams
// while requests it already sent still arrive; after a PING round trip
// (or a second) the final GOAWAY names the last stream l7lb will serve.
// Streams opened before it finish.
func (sc *serverConn) goAway() {
	sc.w.Lock()
	if sc.draining || sc.goingAway {
		sc.w.Unlock()
		return
	}
	sc.draining = true
	sc.w.AppendGoAway(1<<31-1, http2.ErrCodeNo, "shutting down")
	sc.w.AppendPing(false, drainPing)
	sc.w.Unlock()
	sc.w.Kick()
	time.AfterFunc(time.Second, sc.finalGoAway)
}

// finalGoAway is the second phase of goAway.
func (sc *serverConn) finalGoAway() {
	sc.w.Lock()
	if !sc.goingAway {
		sc.goingAway = true
		sc.w.AppendGoAway(sc.lastID, http2.ErrCodeNo, "shutting down")
	}
	if len(sc.streams) == 0 {
		sc.w.CloseAfterFlushLocked()
	}
	sc.w.Unlock()
	sc.w.Kick()
}

// closeAll runs when the reader stops: every stream still open is
// cancelled toward its target, and the connection is closed once the
// writer is done.
func (sc *serverConn) closeAll() {
	sc.w.Lock()
	streams := sc.streamsSlice()
	for _, st := range streams {
		st.respDone, st.reqDone = true, true
		sc.removeLocked(st)
	}
	if sc.idleTimer != nil {
		sc.idleTimer.Stop()
	}
	if sc.stallTimer != nil {
		sc.stallTimer.Stop()
	}
	sc.cond.Broadcast()
	sc.w.CloseAfterFlushLocked()
	sc.w.Unlock()
	sc.w.Kick()
	for _, st := range streams {
		st.abortUpstream(http2.ErrCodeCancel)
	}
	sc.w.Wait(time.Second)
	sc.closeConn()
}

func (sc *serverConn) flow() ConnFlow {
	sc.w.Lock()
	defer sc.w.Unlock()
	return ConnFlow{
		Client:            sc.clientAddr,
		Streams:           len(sc.streams),
		SendWindow:        sc.sendWin,
		RecvWindow:        sc.recvWin.Load() + sc.recvOwed.Load(),
		RecvWindowInitial: connRecvWindow,
		Queued:            sc.w.Buffered(),
	}
}

// ---- parking: an idle connection waits with no goroutine (idlepark) ----

// parkAfter is how long a connection with no stream waits for its next
// byte in a goroutine before it parks.
var parkAfter = time.Second

// bufSource is what the frame reader reads from: the connection's
// current read buffer, which parking gives back and resuming takes anew.
//
// It also turns the idle deadline (armIdleLocked sets one parkAfter
// ahead when the last stream ends) into a nudge: a timeout between
// frames, with nothing of the next one read, is reported (nudged) so
// that the reader can park; a timeout in the middle of a frame only
// clears the deadline and reads on, so a client that sends a frame
// slowly loses nothing.
type bufSource struct {
	sc       *serverConn
	boundary bool // the reader is between frames: nothing of the next one read yet
	nudged   bool // a read timed out at a boundary
}

func (b *bufSource) Read(p []byte) (int, error) {
	for {
		n, err := b.sc.br.Read(p)
		if n > 0 {
			b.boundary = false
		}
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return n, err
		}
		if b.boundary && n == 0 {
			b.nudged = true
			return 0, err
		}
		b.sc.conn.SetReadDeadline(time.Time{})
		if n > 0 {
			return n, nil
		}
	}
}

// Read buffers are pooled by size: a parked connection holds none.
var (
	smallBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 512) }}
	largeBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
)

func getBufReader(c net.Conn, size int) *bufio.Reader {
	pool := &largeBufs
	if size <= 512 {
		pool = &smallBufs
	}
	br := pool.Get().(*bufio.Reader)
	br.Reset(c)
	return br
}

func putBufReader(br *bufio.Reader, size int) {
	br.Reset(nil)
	if size <= 512 {
		smallBufs.Put(br)
	} else {
		largeBufs.Put(br)
	}
}

// park lets an idle connection — no stream, nothing buffered, nothing
// readable — wait for its next byte without a goroutine or a read buffer
// (see idlepark); it reports whether it did. It runs after the idle
// deadline nudged the reader, so the connection has been idle for
// parkAfter and crypto/tls holds no complete record (it would have
// returned it rather than read the socket and time out). The caller must
// return at once and touch nothing more: Wake may already be running the
// next reader.
func (sc *serverConn) park() bool {
	if sc.parkable == nil || sc.srv.opts.NoParking {
		return false
	}
	sc.w.Lock()
	idle := len(sc.streams) == 0 && !sc.goingAway && !sc.draining && !sc.w.Closed()
	sc.w.Unlock()
	if !idle || sc.br.Buffered() > 0 {
		return false
	}
	br := sc.br
	sc.br = nil
	sc.frames.Shrink()
	if err := idlepark.Default.Park(sc.parkable, sc); err != nil {
		sc.br = br
		return false
	}
	putBufReader(br, sc.bufSize)
	parkedConns.Add(1)
	return true
}

// parkedConns counts parkings (tests check that parking happened).
var parkedConns atomic.Int64

// Wake is idlepark's call: the parked connection can be read (or closed).
func (sc *serverConn) Wake() { go sc.resume() }

func (sc *serverConn) resume() {
	sc.br = getBufReader(sc.conn, sc.bufSize)
	sc.readLoop()
}

// unpark takes a parked connection out of the poller and starts its
// reader, which then sees whatever ended it; it runs before every close
// of the socket (a closed socket silently leaves epoll).
func (sc *serverConn) unpark() {
	if idlepark.Default.Cancel(sc) {
		go sc.resume()
	}
}

// closeConn closes the client connection, unparking it first.
func (sc *serverConn) closeConn() {
	sc.unpark()
	sc.conn.Close()
}
