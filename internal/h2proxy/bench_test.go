package h2proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/proxy"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// rawTarget is a minimal h2c gRPC target: every request that ends gets
// response headers, one reply message and OK trailers. It costs little,
// so that a benchmark measures l7lb.
func rawTarget(tb testing.TB, reply int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	msg := make([]byte, 5+reply)
	binary.BigEndian.PutUint32(msg[1:], uint32(reply))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveRawTarget(c, msg)
		}
	}()
	return ln.Addr().String()
}

func serveRawTarget(c net.Conn, msg []byte) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 64<<10)
	if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(bw, nil)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	fr.WriteWindowUpdate(0, 1<<30)
	bw.Flush()
	for {
		// Request headers are never decoded (the target answers every
		// request alike), so no HPACK state is needed and nothing here
		// allocates: the benchmark's allocations are l7lb's.
		fh, err := http2.ReadFrameHeader(br)
		if err != nil {
			return
		}
		if _, err := br.Discard(int(fh.Length)); err != nil {
			return
		}
		var id uint32
		switch fh.Type {
		case http2.FrameSettings:
			if !fh.Flags.Has(http2.FlagSettingsAck) {
				fr.WriteSettingsAck()
			}
		case http2.FrameHeaders, http2.FrameData:
			if fh.Flags.Has(http2.FlagDataEndStream) { // the same bit for both
				id = fh.StreamID
			}
		}
		if id != 0 {
			hbuf.Reset()
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true})
			fr.WriteData(id, false, msg)
			hbuf.Reset()
			enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true, EndStream: true})
		}
		if br.Buffered() == 0 {
			bw.Flush()
		}
	}
}

// BenchmarkForwardUnary drives whole RPCs (3 KiB request, 1 KiB reply)
// through one h2proxy connection to a raw target, 32 in flight, with raw
// HTTP/2 framing on the client side too, neither of which allocates per
// RPC: ns/op and allocs/op are what l7lb's data path costs per RPC (TLS
// aside), with the client's and target's work on the same cores.
func BenchmarkForwardUnary(b *testing.B) {
	srv, _ := newTestServer(b, rawTarget(b, 1024), Limits{})
	req := make([]byte, 5+3072)
	binary.BigEndian.PutUint32(req[1:], 3072)
	driveUnary(b, srv, req)
}

// BenchmarkRouteByCollection prices the collection hold per RPC: the same
// 3 KiB Search request (a real SearchRequest naming its collection)
// through a table of one plain rule ("headers"), and through a table
// whose first rule routes by collection, which every request reaches and
// matches ("collection": l7lb reads the first message before it picks).
// The difference of the two ns/op and allocs/op is what the hold costs.
func BenchmarkRouteByCollection(b *testing.B) {
	msg, err := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books", Dsl: string(bytes.Repeat([]byte{'x'}, 3000))})
	if err != nil {
		b.Fatal(err)
	}
	req := grpcFrame(false, msg)
	for _, tc := range []struct {
		name  string
		rules []config.Rule
	}{
		{"headers", []config.Rule{{Name: "all", Path: "/", PathType: config.PathPrefix, TargetGroup: "g"}}},
		{"collection", []config.Rule{
			{Name: "books", Path: "/", PathType: config.PathPrefix, TargetGroup: "g",
				Conditions: []config.Condition{{Field: config.ConditionCollection, Values: []string{"books"}}}},
			{Name: "rest", Path: "/", PathType: config.PathPrefix, TargetGroup: "g"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv, g := newTestServer(b, rawTarget(b, 1024), Limits{})
			table := route.Compile(tc.rules, func(string) *targetgroup.Group { return g })
			srv.opts.Routes = func() *proxy.Table { return table }
			if table.NeedsBody() != (tc.name == "collection") {
				b.Fatalf("table reads bodies: %v", table.NeedsBody())
			}
			before := g.Targets()[0].Served.Load()
			driveUnary(b, srv, req)
			// Every RPC went to the target: none was answered by l7lb,
			// which would make the figures meaningless.
			if n := g.Targets()[0].Served.Load() - before; n != uint64(b.N) {
				b.Fatalf("%d of %d RPCs reached the target", n, b.N)
			}
		})
	}
}

// driveUnary sends b.N unary RPCs with request req (gRPC-framed) through
// one h2proxy connection, 32 in flight.
func driveUnary(b *testing.B, srv *Server, req []byte) {
	client, server := net.Pipe()
	go srv.ServeConn(server)
	defer client.Close()

	bw := bufio.NewWriterSize(client, 64<<10)
	br := bufio.NewReaderSize(client, 64<<10)
	fr := http2.NewFramer(bw, nil)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	bw.WriteString(http2.ClientPreface)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	bw.Flush()

	const inflight = 32
	slots := make(chan struct{}, inflight)
	done := make(chan struct{})
	var mu sync.Mutex // the framer's writes
	go func() {       // the client's reader: count finished RPCs, free a slot each
		n := 0
		for n < b.N {
			fh, err := http2.ReadFrameHeader(br)
			if err == nil {
				_, err = br.Discard(int(fh.Length))
			}
			if err != nil {
				b.Error(err)
				break
			}
			if fh.Type == http2.FrameHeaders && fh.Flags.Has(http2.FlagHeadersEndStream) {
				n++
				<-slots
			}
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	id := uint32(1)
	for i := 0; i < b.N; i++ {
		slots <- struct{}{}
		mu.Lock()
		hbuf.Reset()
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":path", "/milvus.proto.milvus.MilvusService/Search"},
			{":authority", "milvus-demo.milvus.io"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true})
		fr.WriteData(id, true, req)
		if len(slots) == inflight || i == b.N-1 {
			bw.Flush()
		}
		mu.Unlock()
		id += 2
	}
	<-done
}

// BenchmarkForwardByAlgorithm is BenchmarkForwardUnary over three raw
// targets, once per balancing algorithm: the data path's cost per RPC
// with each picker, in one process, with no backend scheduling in the
// figures (the bench's equal scenario measures whole processes, whose
// CPU per RPC moves with the RPS the backends allow). Compare each
// sub-benchmark's ns/op and allocs/op with round_robin's of the same run
// (benchstat over -count 6, or the ratio the sub-benchmark reports as
// x-rr when round_robin ran first in the same invocation).
func BenchmarkForwardByAlgorithm(b *testing.B) {
	req := make([]byte, 5+3072)
	binary.BigEndian.PutUint32(req[1:], 3072)
	var rrNs float64
	for _, alg := range []config.Algorithm{config.AlgorithmRoundRobin, config.AlgorithmLeastOutstanding,
		config.AlgorithmWeightedRandom, config.AlgorithmPeakEWMA} {
		b.Run(string(alg), func(b *testing.B) {
			var eps []config.Endpoint
			for range 3 {
				host, port, _ := net.SplitHostPort(rawTarget(b, 1024))
				p, _ := strconv.Atoi(port)
				eps = append(eps, config.Endpoint{Address: host, Port: p, Ready: true})
			}
			g := targetgroup.New(config.TargetGroup{
				Name: "ns/svc:19530", Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC,
				MaxMessageBytes: config.DefaultMaxMessageBytes, Endpoints: eps,
				Algorithm: alg, AnomalyMitigation: alg == config.AlgorithmWeightedRandom,
			}, slog.New(slog.DiscardHandler), nil)
			b.Cleanup(g.Close)
			table := route.Compile([]config.Rule{{Name: "r", Path: "/", PathType: config.PathPrefix, TargetGroup: "ns/svc:19530"}},
				func(string) *targetgroup.Group { return g })
			srv := New(Options{Routes: func() *proxy.Table { return table }, Port: 80, Log: slog.New(slog.DiscardHandler)})
			start := time.Now()
			driveUnary(b, srv, req)
			ns := float64(time.Since(start).Nanoseconds()) / float64(b.N)
			if alg == config.AlgorithmRoundRobin {
				rrNs = ns
			} else if rrNs > 0 {
				b.ReportMetric(ns/rrNs, "x-rr")
			}
			var served []uint64
			for _, t := range g.Targets() {
				served = append(served, t.Served.Load())
			}
			// Equal targets: every algorithm spreads the RPCs over all
			// three (a picker stuck on one would make a cheap benchmark).
			for i, n := range served {
				if b.N >= 3000 && n < uint64(b.N)/10 {
					b.Fatalf("target %d served %d of %d RPCs (%v)", i, n, b.N, served)
				}
			}
		})
	}
}
