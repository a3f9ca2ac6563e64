package hpackenc

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"golang.org/x/net/http2/hpack"
)

type field struct {
	name, value string
	sensitive   bool
}

// peer is the decoding side: x/net's decoder, as grpc-go and Go's HTTP/2
// use it, told the same SETTINGS_HEADER_TABLE_SIZE as the encoder.
type peer struct {
	t   testing.TB
	enc *Encoder
	dec *hpack.Decoder
}

func newPeer(t testing.TB) *peer {
	return &peer{t: t, enc: New(), dec: hpack.NewDecoder(DefaultTableSize, nil)}
}

func (p *peer) setLimit(n uint32) {
	p.enc.SetPeerLimit(n)
	p.dec.SetAllowedMaxDynamicTableSize(n)
}

// block encodes fields as one header block, decodes it and checks that
// the decoder saw exactly the fields; it returns the block.
func (p *peer) block(fields ...field) []byte {
	p.t.Helper()
	var b []byte
	for _, f := range fields {
		b = p.enc.AppendField(b, f.name, f.value, f.sensitive)
	}
	p.enc.EndBlock()
	got, err := p.dec.DecodeFull(b)
	if err != nil {
		p.t.Fatalf("decoding %x: %v", b, err)
	}
	if len(got) != len(fields) {
		p.t.Fatalf("decoded %d fields, want %d: %v", len(got), len(fields), got)
	}
	for i, f := range fields {
		if got[i].Name != f.name || got[i].Value != f.value || got[i].Sensitive != f.sensitive {
			p.t.Fatalf("field %d decoded as %+v, want %+v", i, got[i], f)
		}
	}
	return b
}

func grpcRequest(method, timeout string) []field {
	return []field{
		{name: ":method", value: "POST"},
		{name: ":scheme", value: "http"},
		{name: ":authority", value: "milvus-demo.milvus.io"},
		{name: ":path", value: "/milvus.proto.milvus.MilvusService/" + method},
		{name: "content-type", value: "application/grpc"},
		{name: "user-agent", value: "grpc-go/1.79.0"},
		{name: "grpc-timeout", value: timeout},
		{name: "te", value: "trailers"},
		{name: "x-forwarded-for", value: "127.0.0.1"},
		{name: "traceparent", value: "00-" + fmt.Sprintf("%032x", timeout) + "-00f067aa0ba902b7-01"},
	}
}

func TestRepresentations(t *testing.T) {
	tests := []struct {
		name   string
		before [][]field // blocks sent first
		block  []field
		want   []byte
	}{
		{"static exact match", nil, []field{{name: ":method", value: "POST"}}, []byte{0x83}},
		{"static exact :status 200", nil, []field{{name: ":status", value: "200"}}, []byte{0x88}},
		{
			"static name, value indexed",
			nil, []field{{name: "content-type", value: "a"}},
			append([]byte{0x40 | 31, 0x01}, 'a'), // "a" is no shorter in Huffman
		},
		{
			"dynamic hit is one byte",
			[][]field{{{name: "content-type", value: "application/grpc"}}},
			[]field{{name: "content-type", value: "application/grpc"}},
			[]byte{0x80 | 62},
		},
		{
			"newest entry is 62",
			[][]field{{{name: "a", value: "1"}, {name: "b", value: "2"}}},
			[]field{{name: "a", value: "1"}, {name: "b", value: "2"}},
			[]byte{0x80 | 63, 0x80 | 62},
		},
		{
			"sensitive is never indexed, value raw",
			nil, []field{{name: "authorization", value: "x", sensitive: true}},
			[]byte{0x10 | 15, 8, 0x01, 'x'},
		},
		{
			"per-request name goes out raw without indexing",
			nil, []field{{name: "grpc-timeout", value: "5m"}},
			append(append([]byte{0x00, 0x80 | byte(hpack.HuffmanEncodeLength("grpc-timeout"))},
				hpack.AppendHuffmanString(nil, "grpc-timeout")...), 2, '5', 'm'),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPeer(t)
			for _, b := range tt.before {
				p.block(b...)
			}
			if got := p.block(tt.block...); !bytes.Equal(got, tt.want) {
				t.Fatalf("encoded % x, want % x", got, tt.want)
			}
		})
	}
}

// After the first RPC, a gRPC request's fields cost one byte each except
// the per-request ones.
func TestRepeatedRequestsAreIndexed(t *testing.T) {
	p := newPeer(t)
	first := len(p.block(grpcRequest("Search", "1m")...))
	var last int
	for i := range 100 {
		last = len(p.block(grpcRequest("Search", strconv.Itoa(i)+"m")...))
	}
	// 8 indexed fields (1 byte each), grpc-timeout and traceparent literal.
	if limit := 8 + 2*(2+len("grpc-timeout")) + 4 + 2 + len("traceparent") + 55; last > limit {
		t.Fatalf("a repeated request takes %d bytes (first %d), want at most %d", last, first, limit)
	}
	// :method and :scheme are in the static table; the other six repeat.
	if n := len(p.enc.entries); n != 6 {
		t.Fatalf("table holds %d entries, want the 6 repeating fields outside the static table", n)
	}
}

// A name whose values never repeat stops being indexed, and the fields
// that do repeat keep their one-byte encoding.
func TestVolatileNameStopsIndexing(t *testing.T) {
	p := newPeer(t)
	for i := range 50 {
		p.block(field{name: ":path", value: "/s/M"}, field{name: "x-id", value: strconv.Itoa(i)})
	}
	if n := len(p.enc.entries); n != 1+volatileAfter {
		t.Fatalf("table holds %d entries, want :path plus %d x-id values", n, volatileAfter)
	}
	if got := p.block(field{name: ":path", value: "/s/M"}); len(got) != 1 {
		t.Fatalf(":path takes %d bytes, want 1", len(got))
	}
}

// A full table is emptied with size updates, and what repeats is indexed
// again afterwards.
func TestFullTableResets(t *testing.T) {
	p := newPeer(t)
	resets := 0
	for i := range 2000 {
		// 16 values per name over many names: the table fills quickly
		b := p.block(field{name: "n" + strconv.Itoa(i%300), value: strconv.Itoa(i % 16)},
			field{name: "content-type", value: "application/grpc"})
		if b[0]&0xe0 == 0x20 {
			resets++
		}
		if p.enc.used > p.enc.size {
			t.Fatalf("table uses %d bytes of %d", p.enc.used, p.enc.size)
		}
	}
	if resets == 0 {
		t.Fatal("the table never reset")
	}
	if got := p.block(field{name: "content-type", value: "application/grpc"}); len(got) > 2 {
		// one byte, or a fresh literal right after a reset
		if got2 := p.block(field{name: "content-type", value: "application/grpc"}); len(got2) != 1 {
			t.Fatalf("content-type takes %d bytes after a reset, want 1", len(got2))
		}
	}
}

func TestPeerTableSize(t *testing.T) {
	p := newPeer(t)
	p.block(grpcRequest("Search", "1m")...)
	p.setLimit(0)
	b := p.block(grpcRequest("Search", "2m")...)
	if b[0] != 0x20 {
		t.Fatalf("first byte after SETTINGS_HEADER_TABLE_SIZE=0 is %#x, want a size update to 0", b[0])
	}
	for range 3 {
		p.block(grpcRequest("Query", "3m")...)
	}
	if n := len(p.enc.entries); n != 0 {
		t.Fatalf("table holds %d entries with a zero-size peer table", n)
	}
	p.setLimit(100)
	for range 3 {
		p.block(grpcRequest("Query", "3m")...)
	}
	if p.enc.used > 100 {
		t.Fatalf("table uses %d bytes, peer allows 100", p.enc.used)
	}
	p.setLimit(1 << 20) // more than we use: capped at 4096
	for range 3 {
		p.block(grpcRequest("Query", "3m")...)
	}
	if p.enc.size != DefaultTableSize {
		t.Fatalf("table size %d, want %d", p.enc.size, DefaultTableSize)
	}
}

// Random traffic, including long, sensitive and non-ASCII values and
// table-size changes, always decodes to what was encoded.
func TestRandomRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := newPeer(t)
	names := []string{":path", ":authority", "content-type", "x-a", "x-b", "grpc-timeout", "user-agent", "cookie", "x-bin-bin"}
	for i := range 5000 {
		if rng.IntN(500) == 0 {
			p.setLimit([]uint32{0, 64, 256, 4096, 65536}[rng.IntN(5)])
		}
		fields := make([]field, 1+rng.IntN(12))
		for j := range fields {
			fields[j] = randomField(rng, names)
		}
		p.block(fields...)
		if i%1000 == 0 && p.enc.used > p.enc.size {
			t.Fatalf("table uses %d bytes of %d", p.enc.used, p.enc.size)
		}
	}
}

func randomField(rng *rand.Rand, names []string) field {
	f := field{name: names[rng.IntN(len(names))], sensitive: rng.IntN(20) == 0}
	if rng.IntN(10) == 0 {
		f.name = "x-" + strconv.Itoa(rng.IntN(2000))
	}
	switch rng.IntN(4) {
	case 0:
		f.value = strconv.Itoa(rng.IntN(20))
	case 1:
		f.value = strconv.Itoa(rng.IntN(1 << 30))
	case 2:
		b := make([]byte, rng.IntN(3000))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		f.value = string(b)
	default:
		f.value = ""
	}
	return f
}

// FuzzRoundTrip drives the encoder with arbitrary field sequences; `go
// test` runs the seeds, `go test -fuzz FuzzRoundTrip` explores.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("\x00:path\x00/a\x01x-b\x00\xff\xfe"), uint16(4096))
	f.Add([]byte("content-type\x00application/grpc\x00content-type\x00application/grpc"), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		p := newPeer(t)
		p.setLimit(uint32(limit))
		parts := bytes.Split(data, []byte{0})
		for len(parts) >= 2 {
			name, value := string(bytes.ToLower(parts[0])), string(parts[1])
			parts = parts[2:]
			p.block(field{name: name, value: value, sensitive: len(value) > 0 && value[0] == 1},
				field{name: "content-type", value: "application/grpc"})
		}
	})
}
