// Package hpackenc is an HPACK (RFC 7541) encoder built for a proxy that
// re-encodes the same few header fields on every RPC.
//
// golang.org/x/net/http2/hpack's encoder keeps a classic FIFO dynamic
// table: it indexes every field, so per-RPC values (grpc-timeout,
// traceparent) keep evicting the fields that repeat, and every field costs
// two map lookups on name and value plus the eviction bookkeeping. Here:
//
//   - the dynamic table only grows; when it is full, fields that would
//     have been indexed go out as literals, and after enough of those the
//     table is emptied with a size update at the start of a header block,
//     so the fields that repeat now get indexed again;
//   - a header name whose values do not repeat (first seen many times,
//     never hit) stops being indexed at all, as do the names known to
//     carry per-request values;
//   - lookups hash the name once and compare the few values indexed
//     under it.
//
// The output is ordinary HPACK: any decoder reads it.
package hpackenc

import (
	"golang.org/x/net/http2/hpack"
)

const (
	// DefaultTableSize is HPACK's initial SETTINGS_HEADER_TABLE_SIZE and
	// the largest table this encoder uses, whatever the peer allows.
	DefaultTableSize = 4096

	entryOverhead = 32 // RFC 7541 §4.1
	staticLen     = 61 // entries in the static table

	maxValuesPerName = 16   // values of one name kept in the table
	maxIndexedValue  = 1024 // longer values are never indexed
	maxNames         = 512  // distinct names tracked per connection
	// missesBeforeReset is how many fields that should have been indexed
	// went out as literals (table full) before the table is emptied.
	missesBeforeReset = 64
	// volatileAfter: a name inserted this many times without a single
	// hit carries per-request values and is no longer indexed.
	volatileAfter = 8
)

// nameSlot is what the encoder knows about one header name.
type nameSlot struct {
	static   *staticName // nil when the static table lacks the name
	dyn      []int32     // positions in Encoder.entries with this name, oldest first
	inserts  uint32
	hits     uint32
	volatile bool
	literal  []byte // the name as a string literal, once it had to be sent as one
}

type entry struct {
	name, value string
}

// Encoder encodes the header blocks of one connection, in the order the
// peer decodes them. It is not safe for concurrent use.
type Encoder struct {
	names   map[string]*nameSlot
	entries []entry // insertion order; never evicted except by reset
	used    uint32  // RFC size of entries
	size    uint32  // the table size in force at the peer's decoder
	limit   uint32  // the peer's SETTINGS_HEADER_TABLE_SIZE
	misses  int

	// pending size updates, emitted before the next block's first field
	resetPending bool
	inBlock      bool
}

// New returns an encoder for a peer with the default table size.
func New() *Encoder {
	// names starts empty and grows with use: a connection that stays idle
	// after its first RPC (most client connections, most of the time)
	// keeps only the few names it saw.
	return &Encoder{
		names: map[string]*nameSlot{},
		size:  DefaultTableSize,
		limit: DefaultTableSize,
	}
}

// SetPeerLimit applies the peer's SETTINGS_HEADER_TABLE_SIZE: the table is
// emptied and resized (to at most DefaultTableSize) at the start of the
// next header block.
func (e *Encoder) SetPeerLimit(n uint32) {
	if n == e.limit {
		return
	}
	e.limit = n
	e.resetPending = true
}

// EndBlock marks the end of a header block: size updates may only come
// before the first field of a block.
func (e *Encoder) EndBlock() { e.inBlock = false }

// AppendField appends the representation of one header field to dst.
// Sensitive fields are never indexed, at either end (RFC 7541 §7.1.3).
func (e *Encoder) AppendField(dst []byte, name, value string, sensitive bool) []byte {
	if !e.inBlock {
		e.inBlock = true
		if e.resetPending {
			dst = e.reset(dst)
		}
	}
	slot := e.names[name]
	if slot == nil {
		slot = e.newSlot(name)
	}
	if !sensitive {
		if st := slot.static; st != nil {
			for i := range st.values {
				if st.values[i] == value {
					return appendInt(dst, 0x80, 7, uint64(st.valueIdx[i]))
				}
			}
		}
		for _, k := range slot.dyn {
			if e.entries[k].value == value {
				slot.hits++
				return appendInt(dst, 0x80, 7, e.dynIndex(k))
			}
		}
	}
	var nameIdx uint64
	switch {
	case slot.static != nil:
		nameIdx = uint64(slot.static.idx)
	case len(slot.dyn) > 0:
		nameIdx = e.dynIndex(slot.dyn[len(slot.dyn)-1])
	}
	if sensitive {
		dst = appendInt(dst, 0x10, 4, nameIdx) // never indexed
		if nameIdx == 0 {
			dst = appendString(dst, name, false)
		}
		return appendString(dst, value, false)
	}
	if e.indexable(slot, name, value) {
		dst = appendInt(dst, 0x40, 6, nameIdx) // incremental indexing
		if nameIdx == 0 {
			dst = appendString(dst, name, true)
		}
		dst = appendString(dst, value, true)
		e.insert(slot, name, value)
		return dst
	}
	dst = appendInt(dst, 0x00, 4, nameIdx) // without indexing
	if nameIdx == 0 {
		// A per-request field's name goes out on every request: encode
		// it once.
		if slot.literal == nil {
			slot.literal = appendString(nil, name, true)
		}
		dst = append(dst, slot.literal...)
	}
	// Values that are not indexed are mostly per-request; Huffman coding
	// them would cost more CPU than the bytes it saves on a fast link.
	return appendString(dst, value, false)
}

// dynIndex is the HPACK index of entries[k]: the newest entry is 62.
func (e *Encoder) dynIndex(k int32) uint64 {
	return uint64(staticLen + len(e.entries) - int(k))
}

func (e *Encoder) newSlot(name string) *nameSlot {
	slot := &nameSlot{static: staticNames[name]}
	switch name {
	case "grpc-timeout", "traceparent", "tracestate", "content-length", "date",
		"x-request-id", "x-amzn-trace-id", "authorization", "cookie", "set-cookie":
		// per-request values, or secrets a table should not hold
		slot.volatile = true
	}
	if len(e.names) < maxNames {
		e.names[name] = slot
	} else {
		slot.volatile = true // untracked: never indexed
	}
	return slot
}

// indexable decides whether a field goes into the table; a field that
// should but cannot (table full) counts towards a reset.
func (e *Encoder) indexable(slot *nameSlot, name, value string) bool {
	if slot.volatile || len(value) > maxIndexedValue {
		return false
	}
	if slot.inserts >= volatileAfter && slot.hits == 0 {
		slot.volatile = true
		return false
	}
	size := uint32(len(name)+len(value)) + entryOverhead
	if size > e.size-e.used || len(slot.dyn) >= maxValuesPerName {
		e.misses++
		if e.misses >= missesBeforeReset {
			e.resetPending = true
		}
		return false
	}
	return true
}

func (e *Encoder) insert(slot *nameSlot, name, value string) {
	e.used += uint32(len(name)+len(value)) + entryOverhead
	slot.dyn = append(slot.dyn, int32(len(e.entries)))
	slot.inserts++
	e.entries = append(e.entries, entry{name, value})
}

// reset empties the table with a size update to 0 and sets the new size.
func (e *Encoder) reset(dst []byte) []byte {
	e.resetPending = false
	e.misses = 0
	e.entries = e.entries[:0]
	e.used = 0
	if len(e.names) >= maxNames {
		e.names = map[string]*nameSlot{}
	} else {
		for _, s := range e.names {
			s.dyn = s.dyn[:0]
		}
	}
	e.size = min(e.limit, DefaultTableSize)
	dst = appendInt(dst, 0x20, 5, 0)
	if e.size > 0 {
		dst = appendInt(dst, 0x20, 5, uint64(e.size))
	}
	return dst
}

// appendInt appends an HPACK integer (RFC 7541 §5.1) with an n-bit prefix
// in a first byte that carries flags.
func appendInt(dst []byte, flags byte, n uint, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(dst, flags|byte(v))
	}
	dst = append(dst, flags|byte(max))
	v -= max
	for v >= 128 {
		dst = append(dst, byte(v&0x7f|0x80))
		v >>= 7
	}
	return append(dst, byte(v))
}

// appendString appends a string literal (RFC 7541 §5.2), Huffman-coded
// when asked and shorter.
func appendString(dst []byte, s string, huffman bool) []byte {
	if huffman {
		if n := hpack.HuffmanEncodeLength(s); n < uint64(len(s)) {
			dst = appendInt(dst, 0x80, 7, n)
			return hpack.AppendHuffmanString(dst, s)
		}
	}
	dst = appendInt(dst, 0, 7, uint64(len(s)))
	return append(dst, s...)
}
