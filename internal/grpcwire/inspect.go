package grpcwire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MessageTooLarge is returned by an Inspector when a message's declared
// length exceeds the limit.
type MessageTooLarge struct {
	Size, Limit int64
}

func (e *MessageTooLarge) Error() string {
	return fmt.Sprintf("grpc: message of %d bytes is larger than the limit of %d bytes", e.Size, e.Limit)
}

// Inspector follows the gRPC length-prefixed message framing of a stream as
// it passes through, without buffering: it only reads each 5-byte prefix
// (1 byte compressed flag, 4 bytes big-endian length) and skips the
// message bytes. It lets l7lb refuse an oversized message as soon as its
// prefix arrives.
type Inspector struct {
	Limit int64
	// remaining bytes of the current message body; when 0, the next byte
	// starts a prefix.
	remaining int64
	prefix    [5]byte
	have      int // bytes of prefix collected
	Messages  int64
}

// Observe feeds the next chunk of the stream. It returns a
// *MessageTooLarge error for a message over the limit.
func (in *Inspector) Observe(p []byte) error {
	for len(p) > 0 {
		if in.remaining > 0 {
			n := min(int64(len(p)), in.remaining)
			in.remaining -= n
			p = p[n:]
			continue
		}
		n := copy(in.prefix[in.have:], p)
		in.have += n
		p = p[n:]
		if in.have < 5 {
			return nil
		}
		in.have = 0
		size := int64(binary.BigEndian.Uint32(in.prefix[1:]))
		in.Messages++
		if in.Limit > 0 && size > in.Limit {
			return &MessageTooLarge{Size: size, Limit: in.Limit}
		}
		in.remaining = size
	}
	return nil
}

// Reader wraps r so that every byte read is observed.
type Reader struct {
	R  io.Reader
	In *Inspector
}

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	if n > 0 {
		if ierr := r.In.Observe(p[:n]); ierr != nil {
			return 0, ierr
		}
	}
	return n, err
}

// MidMessage reports whether the bytes seen so far end inside a message
// (its prefix or body): the stream cut here would leave the receiver a
// truncated message.
func (in *Inspector) MidMessage() bool { return in.remaining > 0 || in.have > 0 }
