package frameio

import (
	"errors"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HeaderReader decodes a connection's header blocks (HEADERS plus any
// CONTINUATION frames) into a field slice it reuses, so that reading the
// headers of an RPC allocates little. It checks what RFC 9113 §8.2 asks
// of every field (lower-case valid names, valid values, pseudo-headers
// first, no unknown or repeated pseudo-headers) and the size limit l7lb
// advertises; a peer that keeps sending CONTINUATION frames past the
// limit gets a connection error without its bytes being decoded.
//
// Reader feeds it; x/net's Framer, which reads the frame headers,
// enforces the order of CONTINUATION frames.
type HeaderReader struct {
	dec     *hpack.Decoder
	fields  []hpack.HeaderField
	limit   uint32
	size    uint32
	over    bool
	invalid error
	regular bool

	// The block being read.
	StreamID  uint32
	EndStream bool
	Priority  http2.PriorityParam
	HasPrio   bool
	active    bool
}

// Errors a header block can end with.
var (
	ErrHeaderInvalid  = errors.New("invalid header field")
	ErrHeaderTooLarge = errors.New("header list larger than the limit")
)

// NewHeaderReader returns a reader enforcing limit bytes per header list
// (the RFC's size: name + value + 32 per field).
func NewHeaderReader(limit uint32) *HeaderReader {
	h := &HeaderReader{limit: limit}
	h.dec = hpack.NewDecoder(4096, h.emit)
	h.dec.SetMaxStringLength(int(limit))
	return h
}

func (h *HeaderReader) emit(f hpack.HeaderField) {
	if h.over {
		return
	}
	size := f.Size()
	if size > h.limit-h.size || h.size+size > h.limit {
		h.over = true
		return
	}
	h.size += size
	if h.invalid != nil {
		return
	}
	if f.IsPseudo() {
		if h.regular {
			h.invalid = ErrHeaderInvalid // pseudo-header after a regular one
			return
		}
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":status", ":protocol":
		default:
			h.invalid = ErrHeaderInvalid
			return
		}
		for _, p := range h.fields {
			if p.Name == f.Name {
				h.invalid = ErrHeaderInvalid
				return
			}
		}
	} else {
		h.regular = true
		if !validName(f.Name) {
			h.invalid = ErrHeaderInvalid
			return
		}
	}
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		h.invalid = ErrHeaderInvalid
		return
	}
	h.fields = append(h.fields, f)
}

// validName: a token in lower case.
func validName(s string) bool {
	if !httpguts.ValidHeaderFieldName(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// Begin starts a block with its HEADERS frame's flags and fragment; done
// reports whether the block is complete. A non-nil error is a connection
// error (its code).
func (h *HeaderReader) Begin(stream uint32, endStream, hasPrio bool, prio http2.PriorityParam, frag []byte, endHeaders bool) (done bool, err error) {
	h.fields = h.fields[:0]
	h.size, h.over, h.invalid, h.regular = 0, false, nil, false
	h.StreamID = stream
	h.EndStream = endStream
	h.HasPrio = hasPrio
	h.Priority = prio
	h.active = true
	return h.fragment(frag, endHeaders)
}

// Continue adds a CONTINUATION frame's fragment.
func (h *HeaderReader) Continue(stream uint32, frag []byte, endHeaders bool) (done bool, err error) {
	if !h.active || stream != h.StreamID {
		return false, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return h.fragment(frag, endHeaders)
}

func (h *HeaderReader) fragment(frag []byte, end bool) (bool, error) {
	// A peer already over the limit, or one sending far more than the
	// limit in one fragment, is not decoded further: its connection ends.
	if h.over && !end || uint64(len(frag)) > 2*uint64(h.limit) {
		h.active = false
		return false, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if _, err := h.dec.Write(frag); err != nil {
		h.active = false
		return false, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		return false, nil
	}
	h.active = false
	if err := h.dec.Close(); err != nil {
		return false, http2.ConnectionError(http2.ErrCodeCompression)
	}
	return true, nil
}

// Fields is the decoded list; valid until the next Begin.
func (h *HeaderReader) Fields() []hpack.HeaderField { return h.fields }

// Err tells a complete block's problem: ErrHeaderTooLarge, ErrHeaderInvalid
// (a stream error), or nil.
func (h *HeaderReader) Err() error {
	if h.over {
		return ErrHeaderTooLarge
	}
	return h.invalid
}

// Active reports whether a block is waiting for CONTINUATION frames.
func (h *HeaderReader) Active() bool { return h.active }
