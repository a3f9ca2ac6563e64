package metrics

import (
	"testing"
)

// BenchmarkRPCDone measures the request path's recording once its series
// exist: it must report 0 allocs/op.
func BenchmarkRPCDone(b *testing.B) {
	m := New(Options{Version: "bench"})
	r1 := rpc("/milvus.proto.milvus.MilvusService/Search", "0", "10.0.0.1:19530")
	r2 := rpc("/evil.Service/X", "14", "10.0.0.2:19530")
	m.RPCDone(r1)
	m.RPCDone(r2)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.RPCDone(r1)
			m.RPCDone(r2)
		}
	})
}

func TestRPCDoneDoesNotAllocate(t *testing.T) {
	m := New(Options{Version: "test"})
	r := rpc("/milvus.proto.milvus.MilvusService/Search", "0", "10.0.0.1:19530")
	m.RPCDone(r)
	if n := testing.AllocsPerRun(1000, func() { m.RPCDone(r) }); n != 0 {
		t.Errorf("RPCDone allocates %v times per request", n)
	}
}
