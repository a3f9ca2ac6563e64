package hpackenc

import (
	"bytes"
	"strconv"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// The cost of re-encoding a gRPC request's header block, ours against
// x/net's encoder on the same fields; `go test -bench . -benchmem`. As in
// real traffic, grpc-timeout and traceparent change from RPC to RPC.
func BenchmarkRequestBlock(b *testing.B) {
	var variants [256][]field
	for i := range variants {
		variants[i] = grpcRequest("Search", strconv.Itoa(4000+i)+"m")
	}
	b.Run("hpackenc", func(b *testing.B) {
		e := New()
		var buf []byte
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			buf = buf[:0]
			for _, f := range variants[i%len(variants)] {
				buf = e.AppendField(buf, f.name, f.value, false)
			}
			e.EndBlock()
		}
		b.ReportMetric(float64(len(buf)), "bytes/block")
	})
	b.Run("x-net-hpack", func(b *testing.B) {
		var buf bytes.Buffer
		e := hpack.NewEncoder(&buf)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			buf.Reset()
			for _, f := range variants[i%len(variants)] {
				e.WriteField(hpack.HeaderField{Name: f.name, Value: f.value})
			}
		}
		b.ReportMetric(float64(buf.Len()), "bytes/block")
	})
}
