package h2proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http2"

	"github.com/l7lb/l7lb/internal/mtls"
)

// bridge serves a stream that is not forwarded frame by frame (Milvus REST
// over h2, unmatched routes, gRPC for HTTP1 target groups) with the
// fallback http.Handler, in a goroutine of its own: these requests are
// rare and may block on a slow target, which must never stall the
// connection's reader.
type bridge struct {
	st       *stream
	body     *bodyBuffer
	ctx      context.Context
	cancelFn context.CancelFunc

	header      http.Header
	status      int
	wroteHeader bool // WriteHeader was called (headers may still be unsent)
}

func (sc *serverConn) startBridge(st *stream, r *request) {
	u, err := url.ParseRequestURI(r.path)
	if r.method == "CONNECT" {
		u, err = &url.URL{Host: r.authority}, nil
	}
	if err != nil {
		u = &url.URL{Path: r.path}
	}
	hdr := make(http.Header, len(r.fields))
	for _, f := range r.fields {
		if f.IsPseudo() {
			continue
		}
		k := http.CanonicalHeaderKey(f.Name)
		hdr[k] = append(hdr[k], f.Value)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if sc.mtls != nil {
		ctx = mtls.NewContext(ctx, sc.mtls)
	}
	b := &bridge{st: st, ctx: ctx, cancelFn: cancel, header: http.Header{}}
	b.body = &bodyBuffer{st: st}
	b.body.cond = sync.NewCond(&b.body.mu)
	req := (&http.Request{
		Method:        r.method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        hdr,
		Host:          r.authority,
		RemoteAddr:    sc.conn.RemoteAddr().String(),
		RequestURI:    r.path,
		TLS:           sc.tlsState,
		ContentLength: r.contentLength,
	}).WithContext(ctx)
	if st.reqDone {
		req.Body = http.NoBody
		req.ContentLength = 0
	} else {
		req.Body = b.body
	}
	sc.w.Lock()
	st.bridge = b
	gone := st.removed
	sc.w.Unlock()
	if gone {
		cancel()
		return
	}
	go b.run(req)
}

func (b *bridge) cancel() {
	b.cancelFn()
	b.body.abort(context.Canceled)
}

func (b *bridge) run(req *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				b.st.sc.srv.opts.Log.Error("handler panic", "panic", p)
			}
			b.reset(http2.ErrCodeInternal)
			return
		}
		b.finish()
	}()
	b.st.sc.srv.opts.Fallback.ServeHTTP(b, req)
}

// Header implements http.ResponseWriter.
func (b *bridge) Header() http.Header { return b.header }

// WriteHeader records the status; headers go out with the first body
// bytes or at the end, so that an empty response can be one HEADERS frame
// that ends the stream (gRPC's trailers-only form).
func (b *bridge) WriteHeader(code int) {
	if b.wroteHeader || code < 200 {
		return
	}
	b.wroteHeader = true
	b.status = code
}

func (b *bridge) sendHeadersLocked(end bool) {
	st := b.st
	if st.respHeaders {
		return
	}
	st.respHeaders = true
	w := st.sc.w
	if !b.wroteHeader {
		b.WriteHeader(http.StatusOK)
	}
	w.EncodeField(":status", strconv.Itoa(b.status))
	st.rpc.HTTPStatus = b.status
	for k, vs := range b.header {
		if k == "Trailer" || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		lk := strings.ToLower(k)
		if !forwardableResponse(lk) {
			continue
		}
		for _, v := range vs {
			w.EncodeField(lk, v)
		}
	}
	w.AppendHeaders(st.id, end)
}

// Write implements http.ResponseWriter; it blocks while the client has
// granted no window.
func (b *bridge) Write(p []byte) (int, error) {
	st := b.st
	sc := st.sc
	written := 0
	sc.w.Lock()
	defer sc.w.Unlock()
	for {
		if st.respDone || st.removed {
			return written, errors.New("h2proxy: stream closed")
		}
		b.sendHeadersLocked(false)
		if len(p) == 0 {
			return written, nil
		}
		n := int(min(int64(len(p)), st.sendWin, sc.sendWin))
		if n <= 0 {
			sc.w.Kick()
			sc.cond.Wait()
			continue
		}
		if !sc.w.AppendData(st.id, p[:n], false, nil) {
			return written, errors.New("h2proxy: connection closed")
		}
		st.sendWin -= int64(n)
		sc.sendWin -= int64(n)
		st.rpc.BytesOut += int64(n)
		p = p[n:]
		written += n
		sc.w.Kick()
	}
}

// Flush implements http.Flusher: frames are already on their way.
func (b *bridge) Flush() {
	sc := b.st.sc
	sc.w.Lock()
	if !b.st.respDone && !b.st.removed {
		b.sendHeadersLocked(false)
	}
	sc.w.Unlock()
	sc.w.Kick()
}

// trailers collects the handler's trailers.
func (b *bridge) trailers() [][2]string {
	var out [][2]string
	declared := map[string]bool{}
	for _, v := range b.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			declared[http.CanonicalHeaderKey(strings.TrimSpace(k))] = true
		}
	}
	for k, vs := range b.header {
		name := ""
		switch {
		case strings.HasPrefix(k, http.TrailerPrefix):
			name = strings.TrimPrefix(k, http.TrailerPrefix)
		case declared[k]:
			name = k
		default:
			continue
		}
		for _, v := range vs {
			out = append(out, [2]string{strings.ToLower(name), v})
		}
	}
	return out
}

// finish ends the response when the handler returned.
func (b *bridge) finish() {
	st := b.st
	sc := st.sc
	tr := b.trailers()
	sc.w.Lock()
	if !st.respDone && !st.removed {
		switch {
		case !st.respHeaders && len(tr) == 0:
			b.sendHeadersLocked(true)
		case len(tr) > 0:
			b.sendHeadersLocked(false)
			for _, kv := range tr {
				sc.w.EncodeField(kv[0], kv[1])
			}
			sc.w.AppendHeaders(st.id, true)
		default:
			sc.w.AppendData(st.id, nil, true, nil)
		}
		st.respDone = true
		sc.finishLocked(st)
	}
	sc.w.Unlock()
	sc.w.Kick()
	b.body.discard()
}

func (b *bridge) reset(code http2.ErrCode) {
	st := b.st
	sc := st.sc
	sc.w.Lock()
	if !st.removed {
		st.respDone, st.reqDone = true, true
		sc.w.AppendRST(st.id, code)
		sc.removeLocked(st)
	}
	sc.w.Unlock()
	sc.w.Kick()
	b.body.discard()
}

// bodyBuffer carries request DATA from the connection's reader to the
// handler. It holds at most the stream window l7lb granted, because the
// window is given back only as the handler reads.
type bodyBuffer struct {
	st   *stream
	mu   sync.Mutex
	cond *sync.Cond
	buf  []byte
	eof  bool
	err  error
}

func (bb *bodyBuffer) write(p []byte, end bool) {
	bb.mu.Lock()
	if bb.err == nil {
		bb.buf = append(bb.buf, p...)
	} else {
		defer bb.st.sc.creditConn(len(p))
	}
	if end {
		bb.eof = true
	}
	bb.cond.Broadcast()
	bb.mu.Unlock()
}

// Read implements io.Reader for the handler.
func (bb *bodyBuffer) Read(p []byte) (int, error) {
	bb.mu.Lock()
	for len(bb.buf) == 0 && !bb.eof && bb.err == nil {
		bb.cond.Wait()
	}
	if bb.err != nil {
		bb.mu.Unlock()
		return 0, bb.err
	}
	if len(bb.buf) == 0 {
		bb.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(p, bb.buf)
	bb.buf = bb.buf[n:]
	bb.mu.Unlock()
	bb.st.sent(n)
	return n, nil
}

// Close implements io.Closer.
func (bb *bodyBuffer) Close() error {
	bb.discard()
	return nil
}

func (bb *bodyBuffer) abort(err error) {
	bb.mu.Lock()
	if bb.err == nil {
		bb.err = err
	}
	bb.cond.Broadcast()
	bb.mu.Unlock()
}

// discard drops unread body bytes, giving their window back.
func (bb *bodyBuffer) discard() {
	bb.mu.Lock()
	n := len(bb.buf)
	bb.buf = nil
	if bb.err == nil {
		bb.err = io.ErrClosedPipe
	}
	bb.mu.Unlock()
	bb.st.sc.creditConn(n)
}
