package observe

import (
	"encoding/hex"
	"math/rand/v2"
)

// ValidTraceParent reports whether v is a W3C traceparent l7lb keeps:
// version 00, 32 hex digits of trace id, 16 of parent id, 2 of flags, and
// neither id all zeros.
func ValidTraceParent(v string) bool {
	if len(v) != 55 || v[0:3] != "00-" || v[35] != '-' || v[52] != '-' {
		return false
	}
	zeroTrace, zeroParent := true, true
	for i := 3; i < 55; i++ {
		if i == 35 || i == 52 {
			continue
		}
		c := v[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
		if c != '0' {
			if i < 35 {
				zeroTrace = false
			} else if i < 52 {
				zeroParent = false
			}
		}
	}
	return !zeroTrace && !zeroParent
}

// TraceParentLen is the length of a version 00 traceparent.
const TraceParentLen = 55

// NewTraceParent makes a traceparent for a request that came without one
// (sampled flag off: l7lb starts the trace, it does not record spans).
func NewTraceParent() string {
	var b [TraceParentLen]byte
	WriteTraceParent(&b)
	return string(b[:])
}

// WriteTraceParent is NewTraceParent into memory the caller holds.
func WriteTraceParent(b *[TraceParentLen]byte) {
	var id [24]byte
	r1, r2, r3 := rand.Uint64(), rand.Uint64(), rand.Uint64()|1
	for i := 0; i < 8; i++ {
		id[i] = byte(r1 >> (8 * i))
		id[8+i] = byte(r2 >> (8 * i))
		id[16+i] = byte(r3 >> (8 * i))
	}
	copy(b[:], "00-")
	hex.Encode(b[3:35], id[:16])
	b[35] = '-'
	hex.Encode(b[36:52], id[16:])
	copy(b[52:], "-00")
}
