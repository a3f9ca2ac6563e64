package proxy

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/l7lb/l7lb/internal/grpcwire"
	"github.com/l7lb/l7lb/internal/observe"
)

// recordKey carries a request's observe.RPC through the handler, which
// fills in what only it knows (rule, target group, target, its own errors).
type recordKey struct{}

// recordOf is the request's record, nil when nobody observes it.
func recordOf(r *http.Request) *observe.RPC {
	rec, _ := r.Context().Value(recordKey{}).(*observe.RPC)
	return rec
}

// noteError records why l7lb answered a request itself.
func noteError(r *http.Request, msg string) {
	if rec := recordOf(r); rec != nil {
		rec.Error = msg
	}
}

// Observed wraps a listener's HTTP/1.1 handler so that every request is
// reported to obs like the HTTP/2 data path reports its streams, and
// carries a W3C traceparent upstream (an incoming valid one is kept).
// HTTP/2 streams are reported by h2proxy and must not come through here.
func Observed(h http.Handler, port int, obs observe.Observer) http.Handler {
	if obs == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &observe.RPC{
			Start: time.Now(), ListenerPort: port, Method: r.Method, Path: r.URL.Path, Authority: r.Host,
			GRPC: r.ProtoMajor == 2 && grpcwire.IsGRPC(r.Header.Get("Content-Type")), ClientAddr: r.RemoteAddr,
			UserAgent: r.Header.Get("User-Agent"), TLS: r.TLS,
		}
		if tp := r.Header.Get("Traceparent"); observe.ValidTraceParent(tp) {
			rec.TraceParent = tp
		} else {
			rec.TraceParent = observe.NewTraceParent()
			r.Header.Set("Traceparent", rec.TraceParent)
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &countingBody{ReadCloser: r.Body, n: &rec.BytesIn}
		}
		rw := &observedWriter{ResponseWriter: w, rec: rec}
		defer func() {
			rec.End = time.Now()
			if rec.HTTPStatus == 0 && rw.wrote {
				rec.HTTPStatus = http.StatusOK
			}
			obs.RPCDone(rec)
		}()
		h.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), recordKey{}, rec)))
	})
}

type countingBody struct {
	io.ReadCloser
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	*b.n += int64(n)
	return n, err
}

// observedWriter notes the status, the time of the first response byte
// and the body bytes; Unwrap keeps http.ResponseController (flushing of
// streamed replies) working.
type observedWriter struct {
	http.ResponseWriter
	rec   *observe.RPC
	wrote bool
}

func (w *observedWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		w.rec.HTTPStatus = code
		if !w.rec.TargetStart.IsZero() {
			w.rec.TargetFirstByte = time.Now()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *observedWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.rec.BytesOut += int64(n)
	return n, err
}

func (w *observedWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *observedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
