package frameio

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// grpcRequestBlock is the header block of a typical Milvus SDK call.
func grpcRequestBlock(enc *hpack.Encoder, buf *bytes.Buffer) []byte {
	buf.Reset()
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "https"},
		{Name: ":path", Value: "/milvus.proto.milvus.MilvusService/Search"},
		{Name: ":authority", Value: "milvus-demo.milvus.io"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "user-agent", Value: "grpc-go/1.85.0"},
		{Name: "te", Value: "trailers"}, {Name: "dbname", Value: "default"},
		{Name: "authorization", Value: "cm9vdDpNaWx2dXM="},
	} {
		enc.WriteField(f)
	}
	return buf.Bytes()
}

// BenchmarkHeaderReader reads and decodes a request's HEADERS frame as
// the connection reader does for every RPC (after the first, HPACK's dynamic table makes
// most fields one byte).
func BenchmarkHeaderReader(b *testing.B) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	var frame bytes.Buffer
	fw := http2.NewFramer(&frame, nil)
	r := NewReader(&frame, 16384, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		block := grpcRequestBlock(enc, &buf)
		frame.Reset()
		fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
		kind, _, err := r.Next()
		if err != nil || kind != HeaderBlock || len(r.Headers.Fields()) != 9 {
			b.Fatalf("kind %v err %v fields %d", kind, err, len(r.Headers.Fields()))
		}
	}
}

// BenchmarkAppendFrames is what forwarding a small unary reply costs the
// writer: HEADERS, a 1 KiB DATA frame and the trailers.
func BenchmarkAppendFrames(b *testing.B) {
	w := NewWriter(nil)
	payload := make([]byte, 1029)
	b.ReportAllocs()
	for b.Loop() {
		w.Lock()
		w.EncodeField(":status", "200")
		w.EncodeField("content-type", "application/grpc")
		w.AppendHeaders(1, false)
		w.AppendData(1, payload, false, nil)
		w.EncodeField("grpc-status", "0")
		w.EncodeField("grpc-message", "")
		w.AppendHeaders(1, true)
		bufs, arrs := w.out.take() // what the writer goroutine would have done
		release(arrs)
		w.out.giveBack(bufs, arrs)
		w.control = 0
		w.Unlock()
	}
}
