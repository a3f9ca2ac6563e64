package h2proxy

import (
	"fmt"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"

	"github.com/l7lb/l7lb/internal/collection"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/frameio"
	"github.com/l7lb/l7lb/internal/grpcwire"
	"github.com/l7lb/l7lb/internal/observe"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
	"github.com/l7lb/l7lb/internal/upstream"
)

// stream is one client stream. Request-side fields belong to the
// connection's reader; response-side fields are under the connection's
// writer lock.
type stream struct {
	sc *serverConn
	id uint32

	group  *targetgroup.Group
	bridge *bridge // streams that are not forwarded frame by frame
	// hold, on the reader, keeps a stream whose route needs its first
	// message (see hold.go) until it is routed.
	hold *holdState

	// The fast path's attempts, under reqMu (taken before the writer lock,
	// never after it).
	reqMu      sync.Mutex
	cur        *attempt
	saved      savedRequest
	attempts   int
	retrying   bool
	deadlineAt time.Time
	methodSlot uint8 // targetgroup.MethodSlot of the path

	// reader
	recvWin       int64
	received      int64
	contentLength int64
	reqInspect    grpcwire.Inspector
	reqOwed       int64 // stream-level window owed to the client (under lock)
	// reqHeld is request bytes taken from the client's connection window
	// and not credited back yet: they wait in l7lb, or are on their way
	// to the target (under lock). Credit never exceeds it, and removal
	// gives back what is left, so no path can lose or double it.
	reqHeld int64

	// under the writer lock
	reqDone         bool // client sent END_STREAM (or the stream was reset)
	respDone        bool // l7lb ended the response to the client
	respHeaders     bool // response headers went to the client
	removed         bool
	sendWin         int64
	pending         []byte
	pendingEnd      bool
	pendingTrailers []hpack.HeaderField
	blocked         bool
	respInspect     grpcwire.Inspector
	timer           *time.Timer
	held            []hpack.HeaderField  // response headers waiting for the first message
	heldSpace       [4]hpack.HeaderField // held's array for the usual few fields
	respUp          *upstream.Stream     // the attempt whose response goes to the client
	// respGrant is the response window the target holds for this stream
	// (its floor, plus what the connection's budget added); respRecv
	// counts response bytes received, respOwed bytes written to the
	// client and not yet granted back to the target.
	respGrant, respRecv, respOwed int64

	rpc observe.RPC // filled as the request goes; reported when removed

	// Memory for the usual case, so that an RPC costs one allocation: its
	// first attempt (retries allocate their own) and the traceparent l7lb
	// makes when the client sent none. Streams are never recycled, so
	// what points here stays valid.
	firstAttempt attempt
	traceText    [observe.TraceParentLen]byte
}

// onHeaders handles a complete header block from the client.
func (sc *serverConn) onHeaders() error {
	hr := sc.frames.Headers
	id := hr.StreamID
	fields := hr.Fields()
	if id%2 == 0 {
		return connError{http2.ErrCodeProtocol, "stream ID from a client must be odd"}
	}
	sc.w.Lock()
	st := sc.streams[id]
	lastID := sc.lastID
	sc.w.Unlock()
	if st != nil {
		return sc.onTrailers(st, fields, hr.EndStream, hr.Err())
	}
	if id <= lastID {
		return connError{http2.ErrCodeProtocol, "HEADERS on a closed stream or a stream ID that went down"}
	}
	switch hr.Err() {
	case frameio.ErrHeaderTooLarge:
		return connError{http2.ErrCodeEnhanceYourCalm, "header list larger than SETTINGS_MAX_HEADER_LIST_SIZE"}
	case frameio.ErrHeaderInvalid:
		sc.setLastID(id)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if hr.HasPrio && hr.Priority.StreamDep == id {
		sc.setLastID(id)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if code := sc.req.parse(fields); code != 0 {
		sc.setLastID(id)
		return http2.StreamError{StreamID: id, Code: code}
	}
	end := hr.EndStream
	r := &sc.req
	st = &stream{sc: sc, id: id, recvWin: streamRecvWindow, contentLength: r.contentLength, reqDone: end}
	st.rpc = observe.RPC{
		Start: time.Now(), ListenerPort: sc.srv.opts.Port, Method: r.method, Path: r.path, Authority: r.authority,
		GRPC: grpcwire.IsGRPC(r.contentType), ClientAddr: sc.clientAddr, UserAgent: r.userAgent, TLS: sc.tlsState,
	}
	if end && st.contentLength > 0 {
		sc.setLastID(id)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}

	sc.w.Lock()
	sc.lastID = id
	if sc.goingAway || len(sc.streams) >= maxConcurrentStreams {
		sc.w.AppendRST(id, http2.ErrCodeRefusedStream)
		sc.w.Unlock()
		sc.w.Kick()
		return nil
	}
	st.sendWin = sc.initSendWin
	sc.streams[id] = st
	if sc.idleTimer != nil {
		sc.idleTimer.Stop()
	}
	sc.w.SetIdleLocked(false)
	sc.w.Unlock()

	req := route.Request{Host: sc.host(r), Path: r.routePath(), Query: r.query(), Method: r.method, Fields: r.fields,
		Client: sc.clientNetIP, Stage: route.NoBody}
	if st.rpc.GRPC {
		req.Stage = route.Headers
	}
	rule, needBody := sc.srv.opts.Routes().Match(&req)
	if needBody {
		num, named := collection.Field(r.path)
		if named && !end {
			sc.hold(st, r, &req, num) // routed when the first message is in
			return nil
		}
		// No message will come, or the method names no collection.
		req.Stage = route.Body
		rule, _ = sc.srv.opts.Routes().Match(&req)
	}
	sc.dispatch(st, r, rule, end, false)
	return nil
}

// dispatch does what the matched rule says. A held stream (its first
// message read by l7lb) can no longer go to the bridge, so what the bridge
// would answer is answered here. It reports whether the stream was handed
// to a target (or tried): otherwise it was answered locally.
func (sc *serverConn) dispatch(st *stream, r *request, rule *route.Rule[*targetgroup.Group], end, held bool) bool {
	if rule == nil && held {
		st.localStatus(codes.Unimplemented, fmt.Sprintf("l7lb: no rule for host %q and path %q on port %d", sc.host(r), r.routePath(), sc.srv.opts.Port))
		return false
	}
	if rule == nil || !st.rpc.GRPC {
		sc.startBridge(st, r)
		return false
	}
	st.rpc.Rule = rule.Name
	switch rule.Kind {
	case route.FixedResponse:
		st.localStatus(grpcwire.CodeForHTTPStatus(rule.Fixed.StatusCode), rule.Fixed.MessageBody)
		return false
	case route.Redirect:
		st.localStatus(codes.Unimplemented, fmt.Sprintf(
			"l7lb: rule %s redirects HTTP requests; gRPC clients do not follow redirects: connect to the new address", rule.Name))
		return false
	}
	g := rule.Pick()
	if g.Config.ProtocolVersion == config.VersionHTTP1 {
		if !held {
			sc.startBridge(st, r) // answers with the reason
			return false
		}
		st.localStatus(codes.Unavailable, fmt.Sprintf(
			"l7lb: target group %s speaks HTTP1 to its targets (alb.ingress.kubernetes.io/backend-protocol-version); gRPC needs GRPC or HTTP2", g.Name()))
		return false
	}
	sc.forward(st, r, g, end)
	return true
}

func (sc *serverConn) setLastID(id uint32) {
	sc.w.Lock()
	if id > sc.lastID {
		sc.lastID = id
	}
	sc.w.Unlock()
}

// forward opens the stream on a target of g: the fast path.
func (sc *serverConn) forward(st *stream, r *request, g *targetgroup.Group, end bool) {
	st.group = g
	st.rpc.TargetGroup = g.Name()
	st.methodSlot = targetgroup.MethodSlot(r.path)
	g.CountRequest()
	t, ok := g.Pick()
	if !ok {
		st.localStatus(codes.Unavailable, "l7lb: no reachable target in target group "+g.Name())
		return
	}
	if observe.ValidTraceParent(r.traceParent) {
		st.rpc.TraceParent = r.traceParent
	} else {
		observe.WriteTraceParent(&st.traceText)
		st.rpc.TraceParent = unsafe.String(&st.traceText[0], len(st.traceText))
	}
	st.reqInspect.Limit = g.Config.MaxMessageBytes
	st.respInspect.Limit = g.Config.MaxMessageBytes
	if r.grpcTimeout != "" {
		if d, ok := grpcwire.ParseTimeout(r.grpcTimeout); ok {
			st.deadlineAt = st.rpc.Start.Add(d)
		}
	}
	// The request is kept until its response starts, so that it can be
	// sent again to another target (see retry).
	st.saved = savedRequest{method: r.method, authority: r.authority, path: r.path, xff: r.xff, ended: end, ok: true}
	st.saved.save(r.fields)

	st.reqMu.Lock()
	var err error
	for try := 0; try < maxAttempts; try++ {
		a := &st.firstAttempt
		if try > 0 {
			a = new(attempt)
		}
		a.st, a.t = st, t
		st.cur = a
		st.attempts++
		sc.w.Lock()
		st.rpc.Target = t.Addr
		st.rpc.TargetStart = time.Now()
		if st.respGrant == 0 {
			// The target stream's first window, from the connection's
			// budget; removal gives it back whether or not an attempt opens.
			st.respGrant = upstream.StreamWindowFloor
			sc.respGranted += st.respGrant
		}
		sc.w.Unlock()
		t.Served.Add(1)
		if err = a.start(end, sc.batch); err == nil {
			break
		}
		// Not even opened: nothing reached the target; try another.
		t.Failed(err.Error())
		next, ok := g.PickOther(t)
		if !ok || next == t {
			break
		}
		t = next
	}
	if err != nil {
		st.cur = nil
	}
	st.reqMu.Unlock()
	if err != nil {
		st.localStatus(codes.Unavailable, fmt.Sprintf("l7lb: target %s of target group %s: %v", t.Addr, g.Name(), err))
		return
	}
	if !st.deadlineAt.IsZero() {
		// Enforced here as well as passed on: a target that ignores the
		// deadline must not hold the client's stream past it.
		sc.w.Lock()
		if !st.removed {
			st.timer = time.AfterFunc(time.Until(st.deadlineAt), st.deadline)
		}
		sc.w.Unlock()
	}
}

// requestData forwards client DATA on the fast path (or to the bridge).
func (st *stream) requestData(data []byte, end bool) {
	sc := st.sc
	sc.w.Lock()
	lingering := st.respDone
	if lingering {
		st.releaseRequestLocked(len(data))
		if end && !st.removed {
			sc.removeLocked(st)
		}
	}
	sc.w.Unlock()
	if lingering {
		return
	}
	if st.bridge != nil {
		st.bridge.body.write(data, end)
		return
	}
	if st.hold != nil {
		st.holdData(data, end)
		return
	}
	st.forwardRequestData(data, end)
}

// forwardRequestData sends request bytes to the current attempt.
func (st *stream) forwardRequestData(data []byte, end bool) {
	sc := st.sc
	if err := st.reqInspect.Observe(data); err != nil {
		st.releaseRequest(len(data))
		st.abortUpstream(http2.ErrCodeCancel)
		st.localStatus(codes.ResourceExhausted, "l7lb: request "+err.Error())
		return
	}
	st.reqMu.Lock()
	if st.saved.ok {
		if len(st.saved.body)+len(data) > replayLimit {
			st.saved.drop()
		} else {
			st.saved.body = append(st.saved.body, data...)
			st.saved.ended = end
		}
	}
	a, retrying, replayable := st.cur, st.retrying, st.saved.ok
	if a != nil && !retrying {
		// Under reqMu so that a retry cannot slip in between.
		a.up.Data(data, end, sc.batch)
	}
	st.reqMu.Unlock()
	switch {
	case a == nil && !retrying:
		st.releaseRequest(len(data)) // the stream already failed locally
	case retrying && !replayable:
		st.fail(codes.Unavailable, "l7lb: request too large to send again to another target")
	}
}

func (sc *serverConn) onTrailers(st *stream, fields []hpack.HeaderField, end bool, hdrErr error) error {
	if hdrErr == frameio.ErrHeaderTooLarge {
		return connError{http2.ErrCodeEnhanceYourCalm, "header list larger than SETTINGS_MAX_HEADER_LIST_SIZE"}
	}
	pseudo := false
	for _, f := range fields {
		pseudo = pseudo || f.IsPseudo()
	}
	sc.w.Lock()
	var code http2.ErrCode = 0xff
	switch {
	case st.reqDone:
		code = http2.ErrCodeStreamClosed
	case !end || pseudo || hdrErr != nil:
		code = http2.ErrCodeProtocol
	case st.contentLength >= 0 && st.received != st.contentLength:
		code = http2.ErrCodeProtocol
	default:
		st.reqDone = true
		if st.respDone {
			sc.removeLocked(st)
		}
	}
	lingering := st.respDone
	sc.w.Unlock()
	if code != 0xff {
		return http2.StreamError{StreamID: st.id, Code: code}
	}
	if lingering {
		return nil
	}
	switch {
	case st.bridge != nil:
		st.bridge.body.write(nil, true)
	case st.hold != nil:
		// Request trailers end a held request; they are not forwarded
		// (gRPC clients send none).
		st.holdData(nil, true)
	default:
		// Request trailers end the request, and only that reaches the
		// target: an empty DATA frame with END_STREAM. gRPC clients send
		// none, and grpc-go servers (Milvus) treat a second HEADERS on a
		// stream as a connection error: forwarding them would let one
		// client close the target connection under every RPC it carries.
		st.reqMu.Lock()
		st.saved.ended = true
		a, retrying := st.cur, st.retrying
		if a != nil && !retrying {
			a.up.Data(nil, true, sc.batch)
		}
		st.reqMu.Unlock()
	}
	return nil
}

// abortUpstream resets the target side, if any.
func (st *stream) abortUpstream(code http2.ErrCode) {
	st.reqMu.Lock()
	a := st.cur
	st.cur = nil
	st.reqMu.Unlock()
	if a != nil && a.up != nil {
		a.up.Cancel(code)
	}
}

// ---- upstream.Sink: what the target sends, delivered by its reader ----

// forwardHeaders sends response headers, or trailers, to the client.
func (st *stream) forwardHeaders(a *attempt, fields []hpack.HeaderField, end bool, b *frameio.Batch) {
	sc := st.sc
	st.reqMu.Lock()
	st.saved.drop() // the response started: no more retries
	st.reqMu.Unlock()
	sc.w.Lock()
	if st.respDone {
		sc.w.Unlock()
		return
	}
	if !st.respHeaders {
		st.respHeaders = true
		st.respUp = a.up
		st.rpc.TargetFirstByte = time.Now()
		for _, f := range fields {
			if f.Name == ":status" {
				sc.w.EncodeField(":status", f.Value)
				st.rpc.HTTPStatus, _ = strconv.Atoi(f.Value)
			}
		}
		for _, f := range fields {
			if !f.IsPseudo() && forwardableResponse(f.Name) {
				sc.w.EncodeField(f.Name, f.Value)
				if end && f.Name == "grpc-status" {
					st.rpc.GRPCStatus = f.Value
				}
			}
		}
		sc.w.AppendHeaders(st.id, end)
	} else if len(st.pending) > 0 {
		// Trailers wait for the data before them.
		st.pendingTrailers = make([]hpack.HeaderField, 0, len(fields))
		for _, f := range fields {
			if !f.IsPseudo() {
				st.pendingTrailers = append(st.pendingTrailers, f)
			}
		}
		sc.w.Unlock()
		return
	} else {
		st.appendTrailersLocked(fields)
	}
	if end {
		st.respDone = true
		sc.finishLocked(st)
	}
	sc.w.Unlock()
	b.Kick(sc.w)
}

func (st *stream) appendTrailersLocked(fields []hpack.HeaderField) {
	sc := st.sc
	for _, f := range fields {
		if !f.IsPseudo() && forwardableResponse(f.Name) {
			sc.w.EncodeField(f.Name, f.Value)
			if f.Name == "grpc-status" {
				st.rpc.GRPCStatus = f.Value
			}
		}
	}
	sc.w.AppendHeaders(st.id, true)
}

// forwardData sends response bytes within the client's windows; the rest
// waits in l7lb until the client grants window. Either way the target's
// stream window for them comes back only once they left through the
// client's socket (stream.Credit), so a client that does not read stops
// its targets, and nothing else.
func (st *stream) forwardData(a *attempt, p []byte, end bool, b *frameio.Batch) {
	sc := st.sc
	sc.w.Lock()
	switch {
	case st.respDone:
		// Dropped: the target connection credited them on arrival.
		sc.w.Unlock()
		return
	case !st.respHeaders:
		sc.w.Unlock()
		a.up.Cancel(http2.ErrCodeProtocol)
		st.fail(codes.Internal, "l7lb: target sent DATA before HEADERS")
		return
	}
	if err := st.respInspect.Observe(p); err != nil {
		sc.w.Unlock()
		a.up.Cancel(http2.ErrCodeCancel)
		st.fail(codes.ResourceExhausted, "l7lb: response "+err.Error())
		return
	}
	st.respRecv += int64(len(p))
	if len(st.pending) == 0 {
		n := int(max(0, min(int64(len(p)), st.sendWin, sc.sendWin)))
		if n > 0 || (len(p) == 0 && end) {
			fin := end && n == len(p)
			if !st.appendDataLocked(p[:n], fin) {
				sc.w.Unlock()
				return
			}
			p = p[n:]
			if fin {
				st.respDone = true
				sc.finishLocked(st)
			}
		}
	}
	if len(p) > 0 || (end && !st.respDone) {
		st.pending = append(st.pending, p...)
		st.pendingEnd = end
		if !st.blocked {
			st.blocked = true
			sc.blocked = append(sc.blocked, st)
			sc.watchStallLocked()
		}
	}
	grant := st.widenLocked()
	up := st.respUp
	sc.w.Unlock()
	b.Kick(sc.w)
	if grant > 0 {
		up.Grant(int(grant))
	}
}

// appendDataLocked appends response DATA for the client, charging both
// send windows; under w's lock. On false the connection is failing.
func (st *stream) appendDataLocked(p []byte, fin bool) bool {
	sc := st.sc
	if !sc.w.AppendData(st.id, p, fin, st) {
		sc.failWriterLocked()
		return false
	}
	n := int64(len(p))
	st.sendWin -= n
	sc.sendWin -= n
	sc.dataSent += n
	st.rpc.BytesOut += n
	return true
}

// widenLocked grows the target's window for a stream whose response is
// large (half its window arrived) from the connection's budget; under
// w's lock. It returns the increment to grant after unlocking.
func (st *stream) widenLocked() int64 {
	sc := st.sc
	if st.respDone || st.respGrant >= respWindowMax || st.respRecv*2 < st.respGrant {
		return 0
	}
	g := min(respWindowMax-st.respGrant, sc.srv.opts.Limits.ConnBuffer-sc.respGranted)
	if g < upstream.StreamWindowFloor {
		return 0 // the budget is spent: this stream keeps its floor for now
	}
	st.respGrant += g
	sc.respGranted += g
	return g
}

// Credit implements frameio.Creditor: n response bytes left through the
// client's socket (or were dropped with the connection), so the target
// may send that many more, a quarter of the stream's window at a time.
func (st *stream) Credit(n int) {
	sc := st.sc
	sc.w.Lock()
	if st.removed || st.respDone || st.respUp == nil {
		sc.w.Unlock()
		return
	}
	st.respOwed += int64(n)
	var g int64
	if st.respOwed >= st.respGrant/4 {
		g, st.respOwed = st.respOwed, 0
	}
	g += st.widenLocked()
	up := st.respUp
	sc.w.Unlock()
	if g > 0 {
		up.Grant(int(g))
	}
}

// drainLocked sends waiting response data as windows allow; under lock.
func (sc *serverConn) drainLocked(streams []*stream) {
	for _, st := range streams {
		st.blocked = false
		if st.respDone || st.bridge != nil || st.removed {
			continue
		}
		n := int(max(0, min(int64(len(st.pending)), st.sendWin, sc.sendWin)))
		if n > 0 || (len(st.pending) == 0 && (st.pendingEnd || st.pendingTrailers != nil)) {
			fin := st.pendingEnd && st.pendingTrailers == nil && n == len(st.pending)
			if n > 0 || fin {
				if !st.appendDataLocked(st.pending[:n], fin) {
					return
				}
			}
			st.pending = st.pending[n:]
			if len(st.pending) == 0 {
				st.pending = nil
				switch {
				case st.pendingTrailers != nil:
					st.appendTrailersLocked(st.pendingTrailers)
					st.pendingTrailers = nil
					st.respDone = true
					sc.finishLocked(st)
				case fin:
					st.respDone = true
					sc.finishLocked(st)
				}
			}
		}
		if len(st.pending) > 0 && !st.blocked {
			st.blocked = true
			sc.blocked = append(sc.blocked, st)
		}
	}
	sc.watchStallLocked()
}

// watchStallLocked arms the stall timer while response data waits for a
// client that grants no window; under w's lock. A client that stops
// reading altogether is caught by the writer's timeout instead.
func (sc *serverConn) watchStallLocked() {
	if len(sc.blocked) == 0 || sc.stallTimer != nil {
		return
	}
	mark := sc.dataSent
	sc.stallTimer = time.AfterFunc(sc.srv.opts.Limits.WriteStall, func() { sc.checkStall(mark) })
}

// checkStall closes the connection if response data waited all along and
// none moved since mark; its streams are then reset toward their targets,
// which frees what they held.
func (sc *serverConn) checkStall(mark int64) {
	sc.w.Lock()
	sc.stallTimer = nil
	stalled := len(sc.blocked) > 0 && sc.dataSent == mark
	if !stalled {
		sc.watchStallLocked()
		sc.w.Unlock()
		return
	}
	sc.goingAway = true
	sc.w.AppendGoAway(sc.lastID, http2.ErrCodeEnhanceYourCalm, "no window for waiting response data")
	sc.w.CloseAfterFlushLocked()
	sc.w.Unlock()
	sc.w.Kick()
	sc.srv.opts.Log.Info("closing a client connection that took no response data", "client", sc.clientAddr, "after", sc.srv.opts.Limits.WriteStall)
	// The writer stops once the GOAWAY is out (closing the socket,
	// which ends the reader, which settles every stream); a client that
	// does not read that either is cut off a second later.
	go func() {
		if !sc.w.Wait(time.Second) {
			sc.w.Close()
		}
	}()
}

// targetReset ends the response after the target reset the stream or its
// connection failed, and no retry took over.
func (st *stream) targetReset(a *attempt, code http2.ErrCode, err error) {
	sc := st.sc
	sc.w.Lock()
	if st.respDone {
		sc.w.Unlock()
		return
	}
	if err == nil && code == http2.ErrCodeCancel && !st.deadlineAt.IsZero() && time.Until(st.deadlineAt) < 10*time.Millisecond {
		// The target gave up because the deadline l7lb passed on ran out,
		// a moment before l7lb's own timer: the client's answer is the
		// same DEADLINE_EXCEEDED either way.
		sc.w.Unlock()
		st.fail(codes.DeadlineExceeded, "l7lb: deadline exceeded")
		return
	}
	if err == nil {
		// The target's own reset: pass its code through, as a client
		// talking to the target directly would have seen it.
		st.respDone, st.reqDone = true, true
		st.rpc.Reset, st.rpc.ResetBy = uint32(code), "target"
		sc.w.AppendRST(st.id, code)
		sc.removeLocked(st)
		sc.w.Unlock()
		sc.w.Kick()
		return
	}
	sc.w.Unlock()
	msg := fmt.Sprintf("l7lb: target %s of target group %s: %v", a.t.Addr, st.group.Name(), err)
	st.fail(codes.Unavailable, msg)
}

// sent gives the client window back for request bytes that left l7lb
// (or were dropped on their way): connection window for at most what the
// stream still holds, stream window while the request side is open.
func (st *stream) sent(n int) {
	sc := st.sc
	sc.w.Lock()
	n64 := min(int64(n), st.reqHeld)
	st.reqHeld -= n64
	kick := sc.creditConnLocked(n64)
	if !st.reqDone && !st.removed && n64 > 0 {
		st.reqOwed += n64
		if st.reqOwed >= streamRecvWindow/4 {
			if sc.w.AppendWindowUpdate(st.id, uint32(st.reqOwed)) {
				st.recvWin += st.reqOwed // reader-side view; see onData
				st.reqOwed = 0
				kick = true
			} else {
				sc.failWriterLocked()
			}
		}
	}
	sc.w.Unlock()
	if kick {
		sc.w.Kick()
	}
}

// releaseRequest gives back connection window for request bytes l7lb
// discards (the stream already failed, or will never forward them).
func (st *stream) releaseRequest(n int) {
	sc := st.sc
	sc.w.Lock()
	st.releaseRequestLocked(n)
	sc.w.Unlock()
	sc.w.Kick()
}

func (st *stream) releaseRequestLocked(n int) {
	n64 := min(int64(n), st.reqHeld)
	st.reqHeld -= n64
	st.sc.creditConnLocked(n64)
}

// deadline fires when the RPC's grpc-timeout passes.
func (st *stream) deadline() {
	st.sc.w.Lock()
	answered := st.respHeaders
	st.sc.w.Unlock()
	if !answered {
		st.missedDeadline()
	}
	st.abortUpstream(http2.ErrCodeCancel)
	st.fail(codes.DeadlineExceeded, "l7lb: deadline exceeded")
}

// deadlineSlack is how early before l7lb's own deadline a client's
// RST_STREAM still counts as the deadline: the client's clock started
// before the request reached l7lb.
const deadlineSlack = 50 * time.Millisecond

// missedDeadline tells the target that held the request that its
// deadline passed with no answer (see Target.MissedDeadline).
func (st *stream) missedDeadline() {
	st.reqMu.Lock()
	a, path := st.cur, st.saved.path
	st.reqMu.Unlock()
	if a != nil {
		a.t.MissedDeadline(st.methodSlot, st.rpc.Start, path)
	}
}

// fail ends the response with a gRPC status made by l7lb: trailers-only
// when no response headers went out yet, else as trailers.
func (st *stream) fail(code codes.Code, msg string) {
	sc := st.sc
	sc.w.Lock()
	if !st.respDone && code == codes.DeadlineExceeded && st.respInspect.MidMessage() {
		// The deadline cut a reply in the middle of a message: trailers
		// now would read as a truncated message (grpc-go reports INTERNAL
		// "unexpected EOF", whatever the status says). A gRPC server whose
		// deadline cuts a reply resets the stream with CANCEL, which
		// clients report as DEADLINE_EXCEEDED once their deadline passed;
		// so does l7lb.
		st.pending, st.pendingEnd, st.pendingTrailers = nil, false, nil
		st.respDone, st.reqDone = true, true
		st.rpc.GRPCStatus, st.rpc.Error = grpcwire.StatusText(code), msg
		st.rpc.Reset, st.rpc.ResetBy = uint32(http2.ErrCodeCancel), "l7lb"
		sc.w.AppendRST(st.id, http2.ErrCodeCancel)
		sc.removeLocked(st)
		sc.w.Unlock()
		sc.w.Kick()
		return
	}
	if !st.respDone {
		st.pending, st.pendingEnd, st.pendingTrailers = nil, false, nil
		st.appendStatusLocked(code, msg)
		st.respDone = true
		sc.finishLocked(st)
	}
	sc.w.Unlock()
	sc.w.Kick()
}

// localStatus answers a stream that was never forwarded.
func (st *stream) localStatus(code codes.Code, msg string) { st.fail(code, msg) }

func (st *stream) appendStatusLocked(code codes.Code, msg string) {
	w := st.sc.w
	if !st.respHeaders {
		st.respHeaders = true
		st.rpc.HTTPStatus = 200
		w.EncodeField(":status", "200")
		w.EncodeField("content-type", "application/grpc")
	}
	st.rpc.GRPCStatus = grpcwire.StatusText(code)
	st.rpc.Error = msg
	w.EncodeField("grpc-status", grpcwire.StatusText(code))
	w.EncodeField("grpc-message", grpcwire.EncodeMessage(msg))
	w.AppendHeaders(st.id, true)
}

// lingerTime is how long a stream whose response ended stays half-closed
// (local) while its client is still sending, before RST_STREAM(NO_ERROR)
// tells the client to stop (RFC 9113 §8.1). Meanwhile its frames are
// still checked (flow control, content-length) and its data discarded.
const lingerTime = time.Second

// finishLocked retires a stream whose response ended.
func (sc *serverConn) finishLocked(st *stream) {
	if st.reqDone {
		sc.removeLocked(st)
		return
	}
	if st.timer != nil {
		st.timer.Stop()
	}
	st.timer = time.AfterFunc(lingerTime, func() {
		sc.w.Lock()
		if !st.removed {
			sc.w.AppendRST(st.id, http2.ErrCodeNo)
			st.reqDone = true
			sc.removeLocked(st)
		}
		sc.w.Unlock()
		sc.w.Kick()
	})
}
