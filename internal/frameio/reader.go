package frameio

import (
	"encoding/binary"
	"io"

	"golang.org/x/net/http2"
)

// Reader reads a connection's frames. x/net's Framer reads the frame
// headers (it enforces the frame size limit and the order of CONTINUATION
// frames) and every frame but HEADERS and CONTINUATION. Those two the
// Reader parses itself, straight into its HeaderReader: the Framer would
// allocate a frame value for each, and a proxied unary RPC carries three
// header blocks.
type Reader struct {
	Framer  *http2.Framer
	Headers *HeaderReader
	r       io.Reader
	payload []byte
}

// NewReader reads frames from r (buffered: the Framer reads the 9-byte
// frame headers one at a time) of at most maxFrame bytes, with header
// lists of at most headerLimit bytes.
func NewReader(r io.Reader, maxFrame, headerLimit uint32) *Reader {
	fr := http2.NewFramer(nil, r)
	fr.SetMaxReadFrameSize(maxFrame)
	fr.SetReuseFrames()
	return &Reader{Framer: fr, Headers: NewHeaderReader(headerLimit), r: r}
}

// Next reads one frame. A HEADERS or CONTINUATION frame returns a nil
// frame, with block true when it completed a header block (its fields
// and flags are in Headers). Any other frame is returned as the Framer
// parsed it, valid until the next call. Errors are the Framer's: a
// ConnectionError, a StreamError, ErrFrameTooLarge or the reader's.
func (r *Reader) Next() (f http2.Frame, block bool, err error) {
	fh, err := r.Framer.ReadFrameHeader()
	if err != nil {
		return nil, false, err
	}
	if fh.Type != http2.FrameHeaders && fh.Type != http2.FrameContinuation {
		f, err = r.Framer.ReadFrameForHeader(fh)
		return f, false, err
	}
	if int(fh.Length) > cap(r.payload) {
		r.payload = make([]byte, fh.Length)
	}
	p := r.payload[:fh.Length]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return nil, false, err
	}
	if fh.StreamID == 0 {
		return nil, false, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	end := fh.Flags.Has(http2.FlagHeadersEndHeaders)
	if fh.Type == http2.FrameContinuation {
		block, err = r.Headers.Continue(fh.StreamID, p, end)
		return nil, block, err
	}
	var prio http2.PriorityParam
	hasPrio := fh.Flags.Has(http2.FlagHeadersPriority)
	if p, err = unpad(p, fh.Flags.Has(http2.FlagHeadersPadded), hasPrio); err != nil {
		return nil, false, err
	}
	if hasPrio {
		v := binary.BigEndian.Uint32(p)
		prio = http2.PriorityParam{StreamDep: v & 0x7fffffff, Exclusive: v&0x80000000 != 0, Weight: p[4]}
		p = p[5:]
	}
	block, err = r.Headers.Begin(fh.StreamID, fh.Flags.Has(http2.FlagHeadersEndStream), hasPrio, prio, p, end)
	return nil, block, err
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
