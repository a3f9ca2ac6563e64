package h2proxy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/frameio"
	"github.com/l7lb/l7lb/internal/grpcwire"
	"github.com/l7lb/l7lb/internal/targetgroup"
	"github.com/l7lb/l7lb/internal/upstream"
)

// Retries. A request is kept (headers and up to replayLimit body bytes)
// until its response starts, so that it can go to another target when
// the first one certainly did nothing with it.
const (
	replayLimit = 64 << 10
	maxAttempts = 3
)

// attempt is one try of a request at one target. It is the upstream.Sink
// of that try, so callbacks from a try that was given up are recognised
// and ignored.
type attempt struct {
	st *stream
	t  *targetgroup.Target
	up *upstream.Stream // &upMem once opened

	upMem upstream.Stream // one allocation for the attempt and its stream
}

// savedRequest is what a retry needs to send the request again.
type savedRequest struct {
	method, authority, path, xff string
	fields                       []hpack.HeaderField
	body                         []byte
	ended                        bool
	ok                           bool // still replayable
	mem                          *replayMem
}

// replayMem holds a saved request's fields and body; it is pooled, since
// nearly every request is answered and its copy dropped at once.
type replayMem struct {
	fields []hpack.HeaderField
	body   []byte
}

var replayPool = sync.Pool{New: func() any { return new(replayMem) }}

// save copies a request's header fields into pooled memory.
func (r *savedRequest) save(fields []hpack.HeaderField) {
	m := replayPool.Get().(*replayMem)
	m.fields = append(m.fields[:0], fields...)
	r.mem, r.fields, r.body = m, m.fields, m.body[:0]
}

// drop ends replayability and recycles the memory; under reqMu.
func (r *savedRequest) drop() {
	r.ok = false
	if m := r.mem; m != nil {
		clear(m.fields)
		m.fields = m.fields[:0]
		if cap(r.body) <= replayLimit {
			m.body = r.body[:0]
		} else {
			m.body = nil
		}
		r.mem = nil
		replayPool.Put(m)
	}
	r.fields, r.body = nil, nil
}

func (a *attempt) current() bool {
	st := a.st
	st.reqMu.Lock()
	defer st.reqMu.Unlock()
	return st.cur == a
}

// encode writes the request's header fields for the target; it runs under
// the target connection's lock, inside Conns.Open.
func (a *attempt) encode(up *upstream.Stream, w *frameio.Writer) {
	a.up = up
	st := a.st
	r := &st.saved
	w.EncodeField(":method", r.method)
	if st.group.Config.Protocol == config.ProtocolHTTPS {
		w.EncodeField(":scheme", "https")
	} else {
		w.EncodeField(":scheme", "http")
	}
	w.EncodeField(":authority", r.authority)
	w.EncodeField(":path", r.path)
	for _, f := range r.fields {
		if f.IsPseudo() || !forwardable(f.Name) {
			continue
		}
		if f.Sensitive {
			w.EncodeSensitive(f.Name, f.Value)
		} else {
			w.EncodeField(f.Name, f.Value)
		}
	}
	sc := st.sc
	w.EncodeField("te", "trailers")
	if r.xff != "" {
		w.EncodeField("x-forwarded-for", r.xff+", "+sc.clientIP)
	} else {
		w.EncodeField("x-forwarded-for", sc.clientIP)
	}
	if sc.srv.opts.Secure {
		w.EncodeField("x-forwarded-proto", "https")
	} else {
		w.EncodeField("x-forwarded-proto", "http")
	}
	w.EncodeField("x-forwarded-port", sc.srv.portText)
	for _, h := range sc.mtls {
		w.EncodeField(h.Name, h.Value)
	}
	w.EncodeField("traceparent", st.rpc.TraceParent)
}

// start opens the attempt on its target; under st.reqMu.
func (a *attempt) start(end bool, b *frameio.Batch) error {
	return a.t.Conns.Open(&a.upMem, a, a.encode, end, b)
}

// holdHeaders tells whether response headers wait for the first message:
// Milvus's unary methods answer "not ready" inside the reply, and a reply
// already on its way to the client could not be retried.
func holdHeaders(path string) bool {
	const svc = "/milvus.proto.milvus.MilvusService/"
	if !strings.HasPrefix(path, svc) {
		return false
	}
	m := path[len(svc):]
	return m != "CreateReplicateStream" && m != "DumpMessages"
}

// idempotentRead reports Milvus reads that are safe to run twice.
func idempotentRead(path string) bool {
	const svc = "/milvus.proto.milvus.MilvusService/"
	if !strings.HasPrefix(path, svc) {
		return false
	}
	m := path[len(svc):]
	switch m {
	case "Search", "HybridSearch", "Query":
		return true
	}
	for _, p := range []string{"Describe", "Has", "Show", "List", "Get"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// retry sends the request to another target. unprocessed is true when
// the target certainly did nothing (connection refused, GOAWAY-excluded,
// REFUSED_STREAM, ServiceNotReady): any method may then be retried.
// Otherwise only idempotent reads under the opt-in policy, within the
// group's retry budget. It reports whether a new attempt took over.
func (st *stream) retry(from *attempt, why string, unprocessed bool) bool {
	g := st.group
	st.reqMu.Lock()
	if st.cur != from || !st.saved.ok || st.attempts >= maxAttempts || st.expired() {
		st.reqMu.Unlock()
		return false
	}
	if !unprocessed && (g.Config.RetryPolicy != config.RetryIdempotentReads || !idempotentRead(st.saved.path) || !g.TakeRetry()) {
		st.reqMu.Unlock()
		return false
	}
	st.sc.w.Lock()
	started := st.respHeaders || st.respDone
	st.sc.w.Unlock()
	if started {
		st.reqMu.Unlock()
		return false
	}
	t, ok := g.PickOther(from.t)
	if !ok {
		st.reqMu.Unlock()
		return false
	}
	st.attempts++
	st.retrying = true
	g.Events().Retried(g.Name(), why)
	st.cur = nil
	st.reqMu.Unlock()
	from.up.Cancel(http2.ErrCodeCancel)
	st.sc.srv.opts.Log.Debug("retrying on another target", "from", from.t.Addr, "to", t.Addr, "why", why, "path", st.saved.path)

	run := func() { st.startAttempt(t, from.t) }
	if unprocessed {
		run()
	} else {
		// The opt-in policy backs off a little, with jitter.
		time.AfterFunc(time.Duration(10+rand.IntN(40))*time.Millisecond, run)
	}
	return true
}

// startAttempt opens a new attempt at t and replays the saved request.
func (st *stream) startAttempt(t, prev *targetgroup.Target) {
	st.reqMu.Lock()
	if !st.saved.ok {
		// The request outgrew what l7lb keeps while the retry waited.
		st.retrying = false
		st.reqMu.Unlock()
		// prev stays the stream's target; removal settles its count.
		st.fail(codes.Unavailable, "l7lb: request too large to send again to another target")
		return
	}
	a := &attempt{st: st, t: t}
	st.cur = a
	st.retrying = false
	body, ended := st.saved.body, st.saved.ended
	// Replayed bytes report Sent again; stream.sent credits no more than
	// the stream still holds, so the client is never credited twice.
	st.sc.w.Lock()
	st.rpc.TargetStart = time.Now()
	st.sc.w.Unlock()
	err := a.start(ended && len(body) == 0, nil)
	if err == nil && (len(body) > 0 || ended) && !(ended && len(body) == 0) {
		a.up.Data(body, ended, nil)
	}
	st.reqMu.Unlock()

	t.Served.Add(1)
	st.sc.w.Lock()
	st.rpc.Target = t.Addr
	st.sc.w.Unlock()
	if err != nil {
		st.fail(codes.Unavailable, fmt.Sprintf("l7lb: target %s of target group %s: %v", t.Addr, st.group.Name(), err))
	}
}

// expired reports whether the RPC's deadline passed.
func (st *stream) expired() bool {
	return !st.deadlineAt.IsZero() && time.Now().After(st.deadlineAt)
}

// ---- upstream.Sink ----

// Headers forwards response headers or trailers, unless they are held for
// a ServiceNotReady check or the attempt was given up.
func (a *attempt) Headers(fields []hpack.HeaderField, end bool, b *frameio.Batch) {
	st := a.st
	if !a.current() {
		return
	}
	sc := st.sc
	sc.w.Lock()
	first := !st.respHeaders && st.held == nil
	held := st.held
	if end {
		st.held = nil
	}
	sc.w.Unlock()
	if held != nil && end {
		// Trailers right after held headers (a reply with no message):
		// the headers, with their :status, go first.
		a.t.Succeeded(st.methodSlot)
		st.forwardHeaders(a, held, false, b)
	}
	if first {
		if end && grpcStatusOf(fields) == "14" && st.retry(a, "UNAVAILABLE", false) {
			return
		}
		if !end && holdHeaders(st.saved.path) {
			// fields is the connection reader's, reused for the next
			// block: keep a copy (in the stream when it fits).
			sc.w.Lock()
			st.held = append(st.heldSpace[:0], fields...)
			sc.w.Unlock()
			return
		}
		a.t.Succeeded(st.methodSlot)
	}
	st.forwardHeaders(a, fields, end, b)
}

// Data forwards response bytes; the first message of a held response is
// checked for Milvus's ServiceNotReady first.
func (a *attempt) Data(p []byte, end bool, b *frameio.Batch) {
	st := a.st
	if !a.current() {
		return // a given-up attempt: its connection credited the bytes
	}
	sc := st.sc
	sc.w.Lock()
	held := st.held
	st.held = nil
	sc.w.Unlock()
	if held != nil {
		if len(p) > 5 && grpcwire.IsServiceNotReady(p[5:]) {
			a.t.Failed("ServiceNotReady")
			if st.retry(a, "ServiceNotReady", true) {
				return
			}
		} else {
			a.t.Succeeded(st.methodSlot)
		}
		st.forwardHeaders(a, held, false, b)
	}
	st.forwardData(a, p, end, b)
}

// Reset: the target reset the stream, or its connection failed.
func (a *attempt) Reset(code http2.ErrCode, err error, refused bool) {
	st := a.st
	if !a.current() {
		return
	}
	sc := st.sc
	sc.w.Lock()
	started := st.respHeaders
	sc.w.Unlock()
	if !started && code != http2.ErrCodeCancel {
		why := "reset " + code.String()
		if err != nil {
			why = err.Error()
		}
		a.t.Failed(why)
		if st.retry(a, why, refused) {
			return
		}
	}
	st.targetReset(a, code, err)
}

// Sent gives the client window back for request bytes that left l7lb
// (stream.sent never credits more than the stream holds, so replays of
// bytes already credited cost nothing). It takes no lock of the
// stream's: it runs inside calls made under reqMu.
func (a *attempt) Sent(n int) { a.st.sent(n) }

func grpcStatusOf(fields []hpack.HeaderField) string {
	for _, f := range fields {
		if f.Name == "grpc-status" {
			return f.Value
		}
	}
	return ""
}
