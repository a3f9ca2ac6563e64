package h2proxy

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/l7lb/l7lb/internal/collection"
	"github.com/l7lb/l7lb/internal/grpcwire"
	"github.com/l7lb/l7lb/internal/route"
)

// HoldLimit bounds what l7lb holds of a request whose route needs its
// collection: the collection_name must be within this many bytes of the
// first message (it comes right after the small base and db_name fields,
// before any vectors), or the request fails with RESOURCE_EXHAUSTED.
const HoldLimit = 64 << 10

// holdState is a stream waiting for its first message: the route table
// has a rule that reads the collection. Only the reader touches it.
//
// Window accounting is the ordinary one: held bytes were taken from the
// client's connection and stream windows on arrival and counted in
// reqHeld, so they are credited back when they leave for the target
// (sent), when l7lb discards them (releaseRequest), or when the stream
// is removed (a reset while held); no path credits them twice.
type holdState struct {
	req   request // a copy: the connection's request is reused
	route route.Request
	num   protowire.Number
	buf   []byte
	end   bool
}

// hold starts holding st. It copies what routing and forwarding need from
// r, which the next HEADERS overwrites.
func (sc *serverConn) hold(st *stream, r *request, req *route.Request, num protowire.Number) {
	h := holdPool.Get().(*holdState)
	fields, buf := h.req.fields, h.buf
	*h = holdState{req: *r, route: *req, num: num, buf: buf}
	h.req.fields = append(fields, r.fields...)
	h.route.Fields = h.req.fields
	st.hold = h
	// The RPC's deadline runs while l7lb waits for its first message, as
	// it would at a target: a client that sends half a message and stops
	// gets DEADLINE_EXCEEDED from l7lb instead of keeping the stream.
	if r.grpcTimeout != "" {
		if d, ok := grpcwire.ParseTimeout(r.grpcTimeout); ok {
			sc.w.Lock()
			st.deadlineAt = st.rpc.Start.Add(d)
			st.timer = time.AfterFunc(time.Until(st.deadlineAt), st.deadline)
			sc.w.Unlock()
		}
	}
}

// holdPool keeps holdStates, with their header and byte slices, for the
// next held request: a rule routing by collection then costs no
// allocation per RPC for them.
var holdPool = sync.Pool{New: func() any { return new(holdState) }}

// release returns h to holdPool; nothing may use it afterwards. Its
// slices keep their capacity (the byte slice only up to maxPooledHold,
// so that one large cut message does not stay pinned), and their
// contents are cleared, so that the pool holds no request's data.
func (h *holdState) release() {
	clear(h.req.fields)
	fields, buf := h.req.fields[:0], h.buf[:0]
	if cap(buf) > maxPooledHold {
		buf = nil
	}
	*h = holdState{req: request{fields: fields}, buf: buf}
	holdPool.Put(h)
}

const maxPooledHold = 16 << 10

// unhold ends the wait for the first message: it stops the hold's
// deadline timer, and reports false when the stream was answered
// meanwhile (the deadline fired, or is firing on its own goroutine),
// in which case the n held bytes are given back and nothing else is done.
func (st *stream) unhold(n int) bool {
	sc := st.sc
	st.hold = nil
	sc.w.Lock()
	stopped := st.timer == nil || st.timer.Stop()
	st.timer = nil
	answered := st.respDone || st.removed
	sc.w.Unlock()
	if !stopped || answered {
		st.releaseRequest(n)
		return false
	}
	return true
}

// holdData takes request bytes of a held stream, and routes it once the
// collection is known. Usually the first DATA frame holds the start of the
// message, collection_name included: it is read in place and forwarded
// as it is. Only a message cut before its name is copied to be held.
func (st *stream) holdData(data []byte, end bool) {
	h := st.hold
	b := data
	if len(h.buf) > 0 {
		h.buf = append(h.buf, data...)
		b = h.buf
	}
	h.end = h.end || end
	name, res := "", collection.More
	switch {
	case len(b) == 0 && h.end:
		res = collection.Absent // a request without messages
	case len(b) >= 5:
		size := uint64(binary.BigEndian.Uint32(b[1:5]))
		msg := b[5:]
		whole := uint64(len(msg)) >= size
		if whole {
			msg = msg[:size]
		}
		if b[0] == 0 {
			name, res = collection.Scan(msg, h.num, whole)
			break
		}
		// Compressed: gzip is read by inflating the message's start.
		// Any other encoding l7lb cannot read, and routing it as naming
		// no collection would send it to the wrong cluster: say so.
		if enc := h.req.header("grpc-encoding"); enc != "gzip" {
			st.failHeld(len(b), codes.Unimplemented, fmt.Sprintf(
				"l7lb: a rule routes by collection, and this request's first message is compressed (grpc-encoding %q), which l7lb reads only with gzip; send it uncompressed or with gzip", enc))
			return
		}
		name, res = collection.ScanGzip(msg, h.num, whole, HoldLimit)
	}
	switch {
	case res == collection.Found || res == collection.Absent:
		st.routeHeld(name, b)
	case res == collection.Malformed:
		st.failHeld(len(b), codes.Internal, "l7lb: the request's first message is not a valid (gzip-compressed, if flagged) protobuf message; cannot read its collection_name")
	case h.end:
		st.failHeld(len(b), codes.Internal, "l7lb: the request ended inside its first message")
	case len(b) > HoldLimit:
		st.failHeld(len(b), codes.ResourceExhausted, fmt.Sprintf(
			"l7lb: a rule routes by collection, and this request's collection_name is not within the first %d bytes of its first message", HoldLimit))
	case len(h.buf) == 0:
		h.buf = append(h.buf, data...) // data is the reader's buffer: keep a copy
	}
}

// routeHeld matches the held request again, now with its collection, and
// sends it with b, the bytes held so far.
func (st *stream) routeHeld(name string, b []byte) {
	sc, h := st.sc, st.hold
	defer h.release() // b may be h.buf: forwardRequestData copies it on
	if !st.unhold(len(b)) {
		return
	}
	h.route.Stage, h.route.Collection = route.Body, name
	rule, _ := sc.srv.opts.Routes().Match(&h.route)
	if !sc.dispatch(st, &h.req, rule, false, true) {
		st.releaseRequest(len(b))
		return
	}
	st.forwardRequestData(b, h.end)
}

// failHeld answers a held stream from l7lb, giving back its n held bytes.
func (st *stream) failHeld(n int, code codes.Code, msg string) {
	defer st.hold.release()
	if st.unhold(n) {
		st.releaseRequest(n)
		st.localStatus(code, msg)
	}
}
