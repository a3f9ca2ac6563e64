package h2proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/l7lb/l7lb/internal/frameio"
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

	// reader
	frames    *frameio.Reader
	batch     *frameio.Batch
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
	defer sc.closeAll()
	// Over TLS, crypto/tls already holds a decrypted record: a small
	// buffer lets large DATA payloads go from tls's record straight into
	// the framer (bufio reads around itself when empty), one copy less
	// per byte. A raw TCP connection wants a large one: one read syscall
	// for many frames.
	// Over TLS the buffer is small: crypto/tls holds the decrypted record
	// anyway, and an idle connection keeps this buffer for as long as it
	// stays open (a 4 KiB one was a seventh of an idle connection's cost).
	bufSize := 64 << 10
	if _, ok := sc.conn.(*tls.Conn); ok {
		bufSize = 512
	}
	br := bufio.NewReaderSize(sc.conn, bufSize)
	sc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		sc.w.Lock()
		sc.w.AppendGoAway(0, http2.ErrCodeProtocol, "invalid connection preface")
		sc.w.Unlock()
		sc.w.Start(nil, nil)
		sc.w.CloseAfterFlush()
		sc.w.Wait(time.Second)
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
	sc.w.OnError = func(error) { sc.conn.Close() }
	sc.w.Start(nil, nil)
	sc.w.Kick()

	sc.frames = frameio.NewReader(br, 16384, maxHeaderListSize) // 16384: the default frame size we advertise

	sc.batch = &frameio.Batch{}
	defer sc.batch.Flush()
	first := true
	for {
		if br.Buffered() == 0 {
			sc.batch.Flush() // about to block: wake the writers we fed
		}
		kind, f, err := sc.frames.Next()
		if err == nil {
			if first {
				first = false
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
		return
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
	go sc.conn.Close()
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
	sc.conn.Close()
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
