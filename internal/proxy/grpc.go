package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"

	"github.com/l7lb/l7lb/internal/grpcwire"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// limitedBody passes the request body through while following its gRPC
// message framing; an oversized message stops the upload and is
// remembered, so the handler can answer RESOURCE_EXHAUSTED.
type limitedBody struct {
	io.ReadCloser
	in       grpcwire.Inspector
	tooLarge atomic.Pointer[grpcwire.MessageTooLarge]
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if ierr := b.in.Observe(p[:n]); ierr != nil {
			var tl *grpcwire.MessageTooLarge
			if errors.As(ierr, &tl) {
				b.tooLarge.Store(tl)
			}
			return 0, ierr
		}
	}
	return n, err
}

// forwardGRPC sends one RPC to one target of g and streams it both ways:
// request messages go upstream as they arrive and reply messages come back
// as they arrive, so bidirectional RPCs work and nothing is held whole.
func (h *Handler) forwardGRPC(w http.ResponseWriter, r *http.Request, g *targetgroup.Group) {
	target, ok := g.Pick()
	if !ok {
		writeGRPCError(w, codes.Unavailable, fmt.Sprintf("l7lb: no reachable target in target group %s", g.Name()))
		return
	}
	target.InFlight.Add(1)
	target.Served.Add(1)
	defer target.InFlight.Add(-1)

	ctx := r.Context()
	var cancel context.CancelFunc
	if d, ok := grpcwire.ParseTimeout(r.Header.Get("Grpc-Timeout")); ok {
		// Enforced here as well as passed on: a backend that ignores the
		// deadline must not hold the client's stream past it.
		ctx, cancel = context.WithTimeout(ctx, d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	limit := g.Config.MaxMessageBytes
	body := &limitedBody{ReadCloser: r.Body, in: grpcwire.Inspector{Limit: limit}}
	out := (&http.Request{
		Method:        http.MethodPost,
		URL:           &url.URL{Scheme: g.Pool.Scheme(), Host: target.Addr, Path: r.URL.Path, RawPath: r.URL.RawPath},
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h.upstreamHeader(r),
		Body:          body,
		ContentLength: r.ContentLength,
		Host:          r.Host,
	}).WithContext(ctx)

	resp, err := g.Pool.GRPC().RoundTrip(out)
	if err != nil {
		if tl := body.tooLarge.Load(); tl != nil {
			writeGRPCError(w, codes.ResourceExhausted, "l7lb: request "+tl.Error())
			return
		}
		if r.Context().Err() != nil {
			return // the client went away; its reset already reached the target
		}
		code, msg := upstreamStatus(ctx, err)
		writeGRPCError(w, code, fmt.Sprintf("l7lb: target %s of target group %s: %s", target.Addr, g.Name(), msg))
		return
	}
	defer resp.Body.Close()

	hd := w.Header()
	for k, vs := range resp.Header {
		if !isHopByHop(k) {
			hd[k] = vs
		}
	}
	// A response that ended with its HEADERS (trailers-only, as gRPC errors
	// are) must stay one HEADERS frame with END_STREAM: sending the headers
	// early would split it, and gRPC clients reject grpc-status outside a
	// stream-ending frame. Otherwise headers go out at once, so that a
	// server-streaming or bidirectional client sees them before any message.
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	if resp.ContentLength != 0 && flusher != nil {
		flusher.Flush()
	}

	in := grpcwire.Inspector{Limit: limit}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if ierr := in.Observe(buf[:n]); ierr != nil {
				cancel() // resets the upstream stream
				setTrailerStatus(hd, codes.ResourceExhausted, "l7lb: response "+ierr.Error())
				return
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // client gone; cancel() resets the upstream stream
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if tl := body.tooLarge.Load(); tl != nil {
				setTrailerStatus(hd, codes.ResourceExhausted, "l7lb: request "+tl.Error())
				return
			}
			if r.Context().Err() != nil {
				return
			}
			code, msg := upstreamStatus(ctx, rerr)
			setTrailerStatus(hd, code, fmt.Sprintf("l7lb: target %s of target group %s: %s", target.Addr, g.Name(), msg))
			return
		}
	}
	for k, vs := range resp.Trailer {
		hd[http.TrailerPrefix+k] = vs
	}
}

// setTrailerStatus ends a response whose headers may already be out with
// a grpc-status in its trailers.
func setTrailerStatus(hd http.Header, code codes.Code, msg string) {
	hd[http.TrailerPrefix+"Grpc-Status"] = []string{grpcwire.StatusText(code)}
	hd[http.TrailerPrefix+"Grpc-Message"] = []string{grpcwire.EncodeMessage(msg)}
	// A grpc-status that came in the headers would contradict it.
	hd.Del("Grpc-Status")
	hd.Del("Grpc-Message")
}

// upstreamHeader copies the request's metadata for the target, dropping
// connection-specific headers and adding X-Forwarded-*.
func (h *Handler) upstreamHeader(r *http.Request) http.Header {
	out := make(http.Header, len(r.Header)+4)
	for k, vs := range r.Header {
		if !isHopByHop(k) {
			out[k] = vs
		}
	}
	// gRPC requires "te: trailers" end to end.
	out["Te"] = []string{"trailers"}
	h.setForwarded(out, r)
	return out
}

func (h *Handler) setForwarded(out http.Header, r *http.Request) {
	ip := clientIP(r)
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	out["X-Forwarded-For"] = []string{ip}
	out["X-Forwarded-Proto"] = []string{h.proto()}
	out["X-Forwarded-Port"] = []string{h.portText}
}

// upstreamStatus maps a failure talking to a target to the gRPC code a
// client would have seen talking to it directly.
func upstreamStatus(ctx context.Context, err error) (codes.Code, string) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return codes.DeadlineExceeded, "deadline exceeded"
	}
	var se http2.StreamError
	if errors.As(err, &se) {
		return resetCode(se.Code), fmt.Sprintf("stream reset by target (%v)", se.Code)
	}
	return codes.Unavailable, err.Error()
}

// resetCode translates an HTTP/2 RST_STREAM error code into the gRPC code
// that the gRPC specification assigns to it.
func resetCode(c http2.ErrCode) codes.Code {
	switch c {
	case http2.ErrCodeRefusedStream:
		return codes.Unavailable
	case http2.ErrCodeCancel:
		return codes.Canceled
	case http2.ErrCodeEnhanceYourCalm, http2.ErrCodeFlowControl:
		return codes.ResourceExhausted
	case http2.ErrCodeInadequateSecurity:
		return codes.PermissionDenied
	default:
		return codes.Internal
	}
}
