package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawTarget is a target of our own, speaking HTTP/2 over plain TCP (h2c)
// frame by frame, so that target-side faults are fully under the test's
// control. It answers enough gRPC for the harness: grpc.health.v1 Check
// (SERVING), and any other method with the request echoed back, or with
// x-reply-count messages of x-reply-size bytes (as the echo service's
// ServerStream does), after x-hold-ms.
//
// It also keeps its own view of flow control, independent of l7lb's
// bookkeeping: how much response data it may still send l7lb on each
// connection, and which streams l7lb left open on it.
type rawTarget struct {
	addr string // fixed for the target's life: restarts listen here again

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*tconn]struct{}
	frozen chan struct{} // non-nil while frozen; closed on thaw
	mode   targetMode
	closed bool
	wg     sync.WaitGroup

	requests atomic.Int64 // request streams accepted (health checks included)
	served   atomic.Int64 // responses completed
}

// targetMode is the behaviour new connections get (and, for settings,
// existing ones are switched to).
type targetMode struct {
	// initWin is the SETTINGS_INITIAL_WINDOW_SIZE advertised: request
	// bytes l7lb may send per stream before the target grants more.
	initWin uint32
	// tiny: new connections keep the default 65535-byte connection
	// window (existing ones cannot shrink theirs). Credit still goes back
	// as soon as bytes are read, so a tiny target is slow in round trips,
	// not stuck.
	tiny bool
	// maxStreams is SETTINGS_MAX_CONCURRENT_STREAMS (streams beyond it
	// are refused with REFUSED_STREAM).
	maxStreams uint32
	// goawayAfter > 0: each connection sends GOAWAY after accepting that
	// many streams (a max-connection-age, repeatedly).
	goawayAfter int
	// abrupt: the GOAWAY carries INTERNAL_ERROR and the connection closes
	// at once, dropping the streams in flight.
	abrupt bool
}

const (
	targetConnWindow = 16 << 20 // connection window the target grants l7lb for requests
	maxTargetReply   = 64 << 20
	maxTargetBody    = 8 << 20
	healthPath       = "/grpc.health.v1.Health/Check"
	replicaHeader    = "x-milvus-replica" // fakemilvus.ReplicaHeader
	rawReplicaName   = "raw-target"
)

func normalMode() targetMode { return targetMode{initWin: 1 << 20, maxStreams: 1000} }

func startRawTarget() (*rawTarget, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &rawTarget{addr: ln.Addr().String(), conns: map[*tconn]struct{}{}, mode: normalMode()}
	t.serve(ln)
	return t, nil
}

func (t *rawTarget) serve(ln net.Listener) {
	t.ln = ln
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			if ch := t.frozenCh(); ch != nil {
				<-ch // a frozen process accepts nothing (the kernel queues)
			}
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.mu.Lock()
			if t.closed || t.ln != ln {
				t.mu.Unlock()
				c.Close()
				continue
			}
			tc := newTconn(t, c, t.mode)
			t.conns[tc] = struct{}{}
			t.wg.Add(2)
			t.mu.Unlock()
			go func() { defer t.wg.Done(); tc.readLoop() }()
			go func() { defer t.wg.Done(); tc.writeLoop() }()
		}
	}()
}

func (t *rawTarget) frozenCh() chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.frozen
}

// setMode switches the target's behaviour: new connections get m;
// existing ones get the new settings (a mid-connection SETTINGS frame)
// and, with goawayAfter, a GOAWAY right away.
func (t *rawTarget) setMode(m targetMode) {
	t.mu.Lock()
	t.mode = m
	conns := t.connList()
	t.mu.Unlock()
	for _, c := range conns {
		c.switchMode(m)
	}
}

func (t *rawTarget) connList() []*tconn {
	out := make([]*tconn, 0, len(t.conns))
	for c := range t.conns {
		out = append(out, c)
	}
	return out
}

// freeze stops reading, writing and accepting, as a stopped process.
func (t *rawTarget) freeze() {
	t.mu.Lock()
	if t.frozen == nil {
		t.frozen = make(chan struct{})
	}
	t.mu.Unlock()
}

func (t *rawTarget) thaw() {
	t.mu.Lock()
	if t.frozen != nil {
		close(t.frozen)
		t.frozen = nil
	}
	conns := t.connList()
	t.mu.Unlock()
	for _, c := range conns {
		c.wake()
	}
}

// kill closes the listener and every connection, as a crashed process.
func (t *rawTarget) kill() {
	t.mu.Lock()
	ln := t.ln
	t.ln = nil
	conns := t.connList()
	t.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range conns {
		c.close()
	}
}

// restart listens again on the same address (after kill).
func (t *rawTarget) restart() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ln != nil || t.closed {
		return nil
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port is ours; only a racing bind could take it
		if ln, err = net.Listen("tcp", t.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("raw target: listen again on %s: %w", t.addr, err)
	}
	t.serve(ln)
	return nil
}

// recover ends any fault: normal mode, thawed, listening.
func (t *rawTarget) recover() error {
	t.thaw()
	t.setMode(normalMode())
	return t.restart()
}

func (t *rawTarget) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.thaw()
	t.kill()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// targetConnView is the target's own view of one connection.
type targetConnView struct {
	remote string
	// window is what l7lb lets the target send on the connection: the
	// initial 65535, plus every WINDOW_UPDATE l7lb sent, minus the DATA
	// the target sent.
	window int64
	// peak is the largest window l7lb ever granted on it; sent is the
	// response DATA the target sent; streams the streams l7lb opened
	// that are neither finished nor reset.
	peak       int64
	sent       int64
	streams    []uint32
	goingAway  bool
	gotWinUpd  bool // l7lb's initial connection WINDOW_UPDATE arrived
	dataPath   bool // l7lb's data path (not only health checks)
	closedConn bool
}

func (t *rawTarget) view() []targetConnView {
	t.mu.Lock()
	conns := t.connList()
	t.mu.Unlock()
	out := make([]targetConnView, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.view())
	}
	return out
}

// ---- one connection ----

type tconn struct {
	t  *rawTarget
	c  net.Conn
	br *bufio.Reader
	fr *http2.Framer // reads on readLoop; writes only on writeLoop

	mu        sync.Mutex
	cond      *sync.Cond
	mode      targetMode
	closed    bool
	streams   map[uint32]*tstream
	lastID    uint32
	accepted  int
	goingAway bool
	goawayID  uint32
	closeSoon bool // close once the queue is written (abrupt GOAWAY)

	control []ctrlFrame // frames to write, in order

	sendConn  int64 // response window l7lb granted on the connection
	initSend  int64 // l7lb's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame  int
	sentData  int64
	peakWin   int64 // the largest window l7lb ever granted here
	gotWinUpd bool
	dataPath  bool  // carried a request other than a health check
	owedConn  int64 // request credit owed to l7lb (connection)

	enc  *hpack.Encoder // writeLoop only
	hbuf bytes.Buffer
}

type tstream struct {
	id          uint32
	path        string
	hdr         map[string]string
	body        []byte
	reqEnded    bool
	sendWin     int64
	reply       []byte
	off         int
	readyAt     time.Time
	ready       bool
	headersSent bool
	done        bool
	owed        int64 // request credit owed to l7lb (stream)
}

type ctrlKind int

const (
	ctrlSettings ctrlKind = iota
	ctrlSettingsAck
	ctrlPing
	ctrlRST
	ctrlGoAway
)

type ctrlFrame struct {
	kind     ctrlKind
	settings []http2.Setting
	ping     [8]byte
	id       uint32
	code     http2.ErrCode
}

func newTconn(t *rawTarget, c net.Conn, m targetMode) *tconn {
	tc := &tconn{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), mode: m, streams: map[uint32]*tstream{},
		sendConn: 65535, initSend: 65535, maxFrame: 16384, enc: nil}
	tc.cond = sync.NewCond(&tc.mu)
	tc.fr = http2.NewFramer(c, tc.br)
	tc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	tc.fr.MaxHeaderListSize = 1 << 20
	tc.enc = hpack.NewEncoder(&tc.hbuf)
	tc.control = append(tc.control, ctrlFrame{kind: ctrlSettings, settings: []http2.Setting{
		{ID: http2.SettingInitialWindowSize, Val: m.initWin},
		{ID: http2.SettingMaxConcurrentStreams, Val: m.maxStreams},
	}})
	// The connection-level window for requests is raised to
	// targetConnWindow with the first WINDOW_UPDATE (see writeLoop),
	// unless windows are tiny.
	if !m.tiny {
		tc.owedConn = targetConnWindow - 65535
	}
	return tc
}

func (c *tconn) wake() {
	c.mu.Lock()
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *tconn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.c.Close()
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
}

func (c *tconn) switchMode(m targetMode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.mode
	c.mode = m
	if old.initWin != m.initWin || old.maxStreams != m.maxStreams {
		c.control = append(c.control, ctrlFrame{kind: ctrlSettings, settings: []http2.Setting{
			{ID: http2.SettingInitialWindowSize, Val: m.initWin},
			{ID: http2.SettingMaxConcurrentStreams, Val: m.maxStreams},
		}})
	}
	if m.goawayAfter > 0 && !c.goingAway {
		c.startGoAwayLocked()
	}
	c.cond.Broadcast()
}

func (c *tconn) startGoAwayLocked() {
	c.goingAway = true
	c.goawayID = c.lastID
	code := http2.ErrCodeNo
	if c.mode.abrupt {
		code = http2.ErrCodeInternal
		c.closeSoon = true
	}
	c.control = append(c.control, ctrlFrame{kind: ctrlGoAway, id: c.goawayID, code: code})
}

func (c *tconn) view() targetConnView {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := targetConnView{remote: c.c.RemoteAddr().String(), window: c.sendConn, peak: c.peakWin, sent: c.sentData,
		goingAway: c.goingAway, gotWinUpd: c.gotWinUpd, dataPath: c.dataPath, closedConn: c.closed}
	for id, s := range c.streams {
		if !s.done {
			v.streams = append(v.streams, id)
		}
	}
	return v
}

func (c *tconn) waitThaw() {
	if ch := c.t.frozenCh(); ch != nil {
		<-ch
	}
}

func (c *tconn) readLoop() {
	defer c.close()
	var preface [len(http2.ClientPreface)]byte
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		return
	}
	c.c.SetReadDeadline(time.Time{})
	for {
		c.waitThaw()
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		c.waitThaw() // frozen while blocked in the read: hold the frame
		if !c.handle(f) {
			return
		}
	}
}

// handle processes one frame from l7lb; false ends the connection.
func (c *tconn) handle(f http2.Frame) bool {
	c.mu.Lock()
	defer func() { c.cond.Broadcast(); c.mu.Unlock() }()
	if c.closed {
		return false
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return true
		}
		f.ForeachSetting(func(s http2.Setting) error {
			switch s.ID {
			case http2.SettingInitialWindowSize:
				delta := int64(s.Val) - c.initSend
				c.initSend = int64(s.Val)
				for _, st := range c.streams {
					st.sendWin += delta
				}
			case http2.SettingMaxFrameSize:
				c.maxFrame = int(s.Val)
			}
			return nil
		})
		c.control = append(c.control, ctrlFrame{kind: ctrlSettingsAck})
	case *http2.PingFrame:
		if !f.IsAck() {
			c.control = append(c.control, ctrlFrame{kind: ctrlPing, ping: f.Data})
		}
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.sendConn += int64(f.Increment)
			c.peakWin = max(c.peakWin, c.sendConn)
			c.gotWinUpd = true
		} else if st := c.streams[f.StreamID]; st != nil {
			st.sendWin += int64(f.Increment)
		}
	case *http2.RSTStreamFrame:
		if st := c.streams[f.StreamID]; st != nil {
			st.done = true
			delete(c.streams, f.StreamID)
		}
	case *http2.GoAwayFrame:
		// l7lb never sends one to a target today; nothing to do.
	case *http2.MetaHeadersFrame:
		c.onHeaders(f)
	case *http2.DataFrame:
		n := int64(f.Length)
		c.owedConn += n // every DATA byte counts against the connection window
		st := c.streams[f.StreamID]
		if st == nil || st.reqEnded {
			return true
		}
		if len(st.body)+len(f.Data()) > maxTargetBody {
			st.done = true
			delete(c.streams, st.id)
			c.control = append(c.control, ctrlFrame{kind: ctrlRST, id: st.id, code: http2.ErrCodeCancel})
			return true
		}
		st.body = append(st.body, f.Data()...)
		if !f.StreamEnded() {
			st.owed += n
		} else {
			c.requestEnded(st)
		}
	}
	return true
}

func (c *tconn) onHeaders(f *http2.MetaHeadersFrame) {
	id := f.StreamID
	if st := c.streams[id]; st != nil {
		// Request trailers.
		if f.StreamEnded() && !st.reqEnded {
			c.requestEnded(st)
		}
		return
	}
	if id <= c.lastID {
		return
	}
	c.lastID = id
	if c.goingAway && id > c.goawayID {
		return // beyond the GOAWAY: ignored, l7lb treats it as refused
	}
	c.t.requests.Add(1)
	if len(c.streams) >= int(c.mode.maxStreams) {
		c.control = append(c.control, ctrlFrame{kind: ctrlRST, id: id, code: http2.ErrCodeRefusedStream})
		return
	}
	st := &tstream{id: id, hdr: map[string]string{}, sendWin: c.initSend}
	for _, hf := range f.Fields {
		if hf.Name == ":path" {
			st.path = hf.Value
		} else {
			st.hdr[hf.Name] = hf.Value
		}
	}
	c.streams[id] = st
	c.dataPath = c.dataPath || st.path != healthPath
	c.accepted++
	if c.mode.goawayAfter > 0 && !c.goingAway && c.accepted >= c.mode.goawayAfter {
		c.startGoAwayLocked()
	}
	if f.StreamEnded() {
		c.requestEnded(st)
	}
}

// requestEnded builds the reply; under mu.
func (c *tconn) requestEnded(st *tstream) {
	st.reqEnded = true
	st.owed = 0
	st.reply = buildReply(st.path, st.hdr, st.body)
	st.body = nil
	hold, _ := strconv.Atoi(st.hdr["x-hold-ms"])
	if hold > 0 {
		st.readyAt = time.Now().Add(time.Duration(min(hold, 60_000)) * time.Millisecond)
		time.AfterFunc(time.Until(st.readyAt), c.wake)
	} else {
		st.ready = true
	}
}

// buildReply is the whole gRPC response body for a request.
func buildReply(path string, hdr map[string]string, body []byte) []byte {
	if path == healthPath {
		return grpcFrame([]byte{0x08, 0x01}) // HealthCheckResponse{status: SERVING}
	}
	size, errSize := strconv.Atoi(hdr["x-reply-size"])
	count, errCount := strconv.Atoi(hdr["x-reply-count"])
	if errCount != nil || count < 0 {
		count = 1
	}
	if errSize != nil || size < 0 {
		if strings.HasSuffix(path, "/ClientStream") {
			var all []byte
			for _, m := range grpcMessages(body) {
				all = append(all, bytesValueOf(m)...)
			}
			return grpcFrame(bytesValue(all))
		}
		return body // echo: request and reply are the same message type
	}
	if size*count > maxTargetReply {
		count = max(1, maxTargetReply/max(size, 1))
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	msg := grpcFrame(bytesValue(payload))
	return bytes.Repeat(msg, count)
}

func (c *tconn) hasWorkLocked(now time.Time) bool {
	if c.closed {
		return true
	}
	if len(c.control) > 0 {
		return true
	}
	if c.owedConn > 0 {
		return true
	}
	for _, st := range c.streams {
		if st.done {
			continue
		}
		if !st.reqEnded {
			if st.owed > 0 {
				return true
			}
			continue
		}
		if !st.ready {
			if now.Before(st.readyAt) {
				continue
			}
			st.ready = true
		}
		if !st.headersSent {
			return true
		}
		rest := len(st.reply) - st.off
		if rest == 0 || min(st.sendWin, c.sendConn) > 0 {
			return true
		}
	}
	if c.goingAway && len(c.streams) == 0 {
		return true
	}
	return false
}

type outFrame struct {
	ctrl     *ctrlFrame
	winID    uint32
	winInc   uint32
	hdrID    uint32
	headers  [][2]string
	end      bool
	dataID   uint32
	data     []byte
	finishID uint32 // stream done after this frame
}

func (c *tconn) writeLoop() {
	defer c.close()
	for {
		c.waitThaw()
		c.mu.Lock()
		for {
			now := time.Now()
			if c.hasWorkLocked(now) {
				break
			}
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		frames, closeAfter := c.collectLocked()
		c.mu.Unlock()
		c.waitThaw()
		c.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for _, f := range frames {
			if err := c.writeFrame(f); err != nil {
				return
			}
		}
		if closeAfter {
			time.Sleep(10 * time.Millisecond)
			return
		}
	}
}

// collectLocked takes what may be sent now: control frames, request
// credit, and response frames within l7lb's windows.
func (c *tconn) collectLocked() ([]outFrame, bool) {
	var out []outFrame
	for i := range c.control {
		out = append(out, outFrame{ctrl: &c.control[i]})
	}
	c.control = nil
	// Request credit back to l7lb, for every byte read.
	if c.owedConn > 0 {
		out = append(out, outFrame{winID: 0, winInc: uint32(c.owedConn)})
		c.owedConn = 0
	}
	for _, st := range c.streams {
		if st.owed > 0 && !st.reqEnded && !st.done {
			out = append(out, outFrame{winID: st.id, winInc: uint32(st.owed)})
			st.owed = 0
		}
	}
	// Responses.
	for _, st := range c.streams {
		if st.done || !st.reqEnded || !st.ready {
			continue
		}
		if !st.headersSent {
			st.headersSent = true
			out = append(out, outFrame{hdrID: st.id, headers: [][2]string{
				{":status", "200"}, {"content-type", "application/grpc"}, {replicaHeader, rawReplicaName}}})
		}
		for st.off < len(st.reply) {
			n := min(int64(len(st.reply)-st.off), st.sendWin, c.sendConn, int64(c.maxFrame))
			if n <= 0 {
				break
			}
			out = append(out, outFrame{dataID: st.id, data: st.reply[st.off : st.off+int(n)]})
			st.off += int(n)
			st.sendWin -= n
			c.sendConn -= n
			c.sentData += n
			if len(out) > 64 {
				break // let control frames and other streams through
			}
		}
		if st.off == len(st.reply) {
			st.done = true
			delete(c.streams, st.id)
			c.t.served.Add(1)
			out = append(out, outFrame{hdrID: st.id, headers: [][2]string{{"grpc-status", "0"}}, end: true})
		}
	}
	closeAfter := c.closeSoon || (c.goingAway && len(c.streams) == 0)
	return out, closeAfter
}

func (c *tconn) writeFrame(f outFrame) error {
	switch {
	case f.ctrl != nil:
		cf := f.ctrl
		switch cf.kind {
		case ctrlSettings:
			return c.fr.WriteSettings(cf.settings...)
		case ctrlSettingsAck:
			return c.fr.WriteSettingsAck()
		case ctrlPing:
			return c.fr.WritePing(true, cf.ping)
		case ctrlRST:
			return c.fr.WriteRSTStream(cf.id, cf.code)
		case ctrlGoAway:
			return c.fr.WriteGoAway(cf.id, cf.code, []byte("chaos target going away"))
		}
	case f.winInc > 0:
		return c.fr.WriteWindowUpdate(f.winID, f.winInc)
	case f.hdrID != 0:
		c.hbuf.Reset()
		for _, h := range f.headers {
			c.enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
		}
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.hdrID, BlockFragment: c.hbuf.Bytes(), EndStream: f.end, EndHeaders: true})
	case f.dataID != 0:
		return c.fr.WriteData(f.dataID, false, f.data)
	}
	return nil
}

// ---- gRPC and protobuf bits ----

// grpcFrame prefixes one message with gRPC's 5-byte header.
func grpcFrame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	out[1], out[2], out[3], out[4] = byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg))
	copy(out[5:], msg)
	return out
}

// bytesValue encodes google.protobuf.BytesValue{value: p}.
func bytesValue(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	out := []byte{0x0a}
	n := uint64(len(p))
	for n >= 0x80 {
		out = append(out, byte(n)|0x80)
		n >>= 7
	}
	out = append(out, byte(n))
	return append(out, p...)
}

// bytesValueOf decodes what bytesValue encodes (and skips anything else).
func bytesValueOf(m []byte) []byte {
	if len(m) < 2 || m[0] != 0x0a {
		return nil
	}
	var n uint64
	i := 1
	for shift := 0; i < len(m) && shift < 64; shift += 7 {
		b := m[i]
		i++
		n |= uint64(b&0x7f) << shift
		if b < 0x80 {
			break
		}
	}
	if uint64(len(m)-i) < n {
		return nil
	}
	return m[i : i+int(n)]
}

// grpcMessages splits a gRPC body into its messages.
func grpcMessages(body []byte) [][]byte {
	var out [][]byte
	for len(body) >= 5 {
		n := int(body[1])<<24 | int(body[2])<<16 | int(body[3])<<8 | int(body[4])
		if n < 0 || len(body)-5 < n {
			break
		}
		out = append(out, body[5:5+n])
		body = body[5+n:]
	}
	return out
}

var errTimeout = errors.New("timed out")
