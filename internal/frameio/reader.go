package frameio

import (
	"encoding/binary"
	"io"

	"golang.org/x/net/http2"
)

// Reader reads a connection's frames. x/net's Framer reads the frame
// headers (it enforces the frame size limit and the order of CONTINUATION
// frames) and most frames. HEADERS, CONTINUATION, WINDOW_UPDATE and PING
// the Reader parses itself, in place: the Framer allocates a value for
// each of those (DATA it reuses), and every proxied RPC brings several
// (gRPC clients send PINGs to estimate bandwidth as replies arrive).
type Reader struct {
	Framer   *http2.Framer
	Headers  *HeaderReader // a header block, when Next returns HeaderBlock
	Window   WindowUpdate  // when Next returns WindowUpdateFrame
	Ping     Ping          // when Next returns PingFrame
	r        io.Reader
	payload  []byte
	maxFrame uint32
}

// Kind tells what Next read.
type Kind uint8

const (
	// OtherFrame: the frame as x/net's Framer parsed it.
	OtherFrame Kind = iota
	// HeaderBlock: a HEADERS or CONTINUATION frame completed a header
	// block, now in Headers.
	HeaderBlock
	// HeaderFragment: a HEADERS or CONTINUATION frame that leaves its
	// block unfinished; nothing to act on yet.
	HeaderFragment
	// WindowUpdateFrame: a WINDOW_UPDATE, now in Window.
	WindowUpdateFrame
	// PingFrame: a PING, now in Ping.
	PingFrame
)

// Ping is a PING frame's content.
type Ping struct {
	Ack  bool
	Data [8]byte
}

// WindowUpdate is a WINDOW_UPDATE frame's content.
type WindowUpdate struct {
	StreamID  uint32 // 0: the connection's window
	Increment uint32 // never 0: Next refuses that
}

// NewReader reads frames from r (buffered: the Framer reads the 9-byte
// frame headers one at a time) of at most maxFrame bytes, with header
// lists of at most headerLimit bytes.
func NewReader(r io.Reader, maxFrame, headerLimit uint32) *Reader {
	fr := http2.NewFramer(nil, r)
	fr.SetMaxReadFrameSize(maxFrame)
	fr.SetReuseFrames()
	return &Reader{Framer: fr, Headers: NewHeaderReader(headerLimit), r: r, maxFrame: maxFrame}
}

// Shrink lets go of the buffers that grew to the largest frames read (the
// Framer's, and the Reader's own beyond 1 KiB), for a connection about to
// sit idle; between frames only. The Framer holds no state across frames
// that matters here: HEADERS and CONTINUATION never reach it.
func (r *Reader) Shrink() {
	if cap(r.payload) > 1<<10 {
		r.payload = nil
	}
	fr := http2.NewFramer(nil, r.r)
	fr.SetMaxReadFrameSize(r.maxFrame)
	fr.SetReuseFrames()
	r.Framer = fr
}

// Next reads one frame and tells what it was; f is set for OtherFrame
// only, and valid until the next call. Errors are the Framer's kinds: a
// ConnectionError, a StreamError, ErrFrameTooLarge or the reader's.
func (r *Reader) Next() (k Kind, f http2.Frame, err error) {
	fh, err := r.Framer.ReadFrameHeader()
	if err != nil {
		return OtherFrame, nil, err
	}
	switch fh.Type {
	case http2.FrameHeaders, http2.FrameContinuation, http2.FrameWindowUpdate, http2.FramePing:
	default:
		f, err = r.Framer.ReadFrameForHeader(fh)
		return OtherFrame, f, err
	}
	if int(fh.Length) > cap(r.payload) {
		r.payload = make([]byte, fh.Length)
	}
	p := r.payload[:fh.Length]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return OtherFrame, nil, err
	}
	switch fh.Type {
	case http2.FrameWindowUpdate:
		return WindowUpdateFrame, nil, r.windowUpdate(fh.StreamID, p)
	case http2.FramePing:
		return PingFrame, nil, r.ping(fh, p)
	}
	if fh.StreamID == 0 {
		return OtherFrame, nil, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	end := fh.Flags.Has(http2.FlagHeadersEndHeaders)
	var done bool
	if fh.Type == http2.FrameContinuation {
		done, err = r.Headers.Continue(fh.StreamID, p, end)
	} else {
		var prio http2.PriorityParam
		hasPrio := fh.Flags.Has(http2.FlagHeadersPriority)
		if p, err = unpad(p, fh.Flags.Has(http2.FlagHeadersPadded), hasPrio); err != nil {
			return OtherFrame, nil, err
		}
		if hasPrio {
			v := binary.BigEndian.Uint32(p)
			prio = http2.PriorityParam{StreamDep: v & 0x7fffffff, Exclusive: v&0x80000000 != 0, Weight: p[4]}
			p = p[5:]
		}
		done, err = r.Headers.Begin(fh.StreamID, fh.Flags.Has(http2.FlagHeadersEndStream), hasPrio, prio, p, end)
	}
	if done {
		return HeaderBlock, nil, err
	}
	return HeaderFragment, nil, err
}

// windowUpdate checks a WINDOW_UPDATE's payload as RFC 9113 §6.9 asks.
func (r *Reader) windowUpdate(stream uint32, p []byte) error {
	if len(p) != 4 {
		return http2.ConnectionError(http2.ErrCodeFrameSize)
	}
	inc := binary.BigEndian.Uint32(p) & 0x7fffffff // the high bit is reserved
	if inc == 0 {
		if stream == 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return http2.StreamError{StreamID: stream, Code: http2.ErrCodeProtocol}
	}
	r.Window = WindowUpdate{StreamID: stream, Increment: inc}
	return nil
}

// ping checks a PING as RFC 9113 §6.7 asks.
func (r *Reader) ping(fh http2.FrameHeader, p []byte) error {
	if len(p) != 8 {
		return http2.ConnectionError(http2.ErrCodeFrameSize)
	}
	if fh.StreamID != 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	r.Ping = Ping{Ack: fh.Flags.Has(http2.FlagPingAck), Data: [8]byte(p)}
	return nil
}

// unpad strips a HEADERS payload's padding. Padding longer than the rest
// of the payload, or a payload too short for its flags, is a connection
// error (RFC 9113 §6.2).
func unpad(p []byte, padded, prio bool) ([]byte, error) {
	min := 0
	if prio {
		min = 5
	}
	if !padded {
		if len(p) < min {
			return nil, http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		return p, nil
	}
	if len(p) < 1+min {
		return nil, http2.ConnectionError(http2.ErrCodeFrameSize)
	}
	pad := int(p[0])
	p = p[1:]
	if pad > len(p)-min {
		return nil, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return p[:len(p)-pad], nil
}
