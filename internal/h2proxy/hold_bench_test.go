package h2proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/proxy"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// BenchmarkHoldCollection is BenchmarkForwardUnary's set-up (whole
// unary RPCs, 32 in flight over one connection, raw HTTP/2 on both sides)
// with a real SearchRequest (collection "books", a 3 KiB placeholder
// group) and two route tables of two rules each, both sending it to the
// same target:
//
//   - headers: an http-header (dbname) rule first, then the default:
//     routed when the HEADERS arrive, as every table without a
//     collection rule is;
//   - collection: a collection rule ("moved") first, then the default:
//     the stream is held until its first message is in, its
//     collection_name read, and the table matched again.
//
// The difference per op is what the hold path costs per RPC.
func BenchmarkHoldCollection(b *testing.B) {
	msg, err := proto.Marshal(&milvuspb.SearchRequest{CollectionName: "books", SearchInput: &milvuspb.SearchRequest_PlaceholderGroup{PlaceholderGroup: make([]byte, 3072)}, Nq: 1})
	if err != nil {
		b.Fatal(err)
	}
	req := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(req[1:], uint32(len(msg)))
	copy(req[5:], msg)
	first := map[string]config.Rule{
		"headers": {Name: "db", Path: "/", PathType: config.PathPrefix, TargetGroup: "ns/svc:19530",
			Conditions: []config.Condition{{Field: config.ConditionHTTPHeader, HeaderName: "dbname", Values: []string{"analytics"}}}},
		"collection": {Name: "moved", Path: "/", PathType: config.PathPrefix, TargetGroup: "ns/svc:19530",
			Conditions: []config.Condition{{Field: config.ConditionCollection, Values: []string{"moved"}}}},
	}
	for _, name := range []string{"headers", "collection"} {
		b.Run(name, func(b *testing.B) {
			rules := []config.Rule{first[name], {Name: "default", Path: "/", PathType: config.PathPrefix, TargetGroup: "ns/svc:19530"}}
			srv := newRoutedServer(b, rawTarget(b, 1024), rules)
			if got := srv.opts.Routes().NeedsBody(); got != (name == "collection") {
				b.Fatalf("table NeedsBody = %v", got)
			}
			driveUnary(b, srv, req)
		})
	}
}

// newRoutedServer serves rules, whose target groups are all one group of
// one target (h2c).
func newRoutedServer(tb testing.TB, target string, rules []config.Rule) *Server {
	host, port, _ := net.SplitHostPort(target)
	p, _ := strconv.Atoi(port)
	log := slog.New(slog.DiscardHandler)
	g := targetgroup.New(config.TargetGroup{
		Name: "ns/svc:19530", Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC,
		MaxMessageBytes: config.DefaultMaxMessageBytes,
		Endpoints:       []config.Endpoint{{Address: host, Port: p, Ready: true}},
	}, log, nil)
	tb.Cleanup(g.Close)
	table := route.Compile(rules, func(string) *targetgroup.Group { return g })
	return New(Options{Routes: func() *proxy.Table { return table }, Port: 80, Log: log})
}

// driveUnary sends b.N unary Search RPCs with body req (a whole gRPC
// message, prefix included), 32 in flight, over one raw HTTP/2
// connection, and waits for every response to end.
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
	// gotHeaders[id/2] records response headers before the trailers: a
	// forwarded RPC has both, an answer of l7lb's own (a routing failure)
	// is trailers-only. Allocated here, so the reader allocates nothing.
	gotHeaders := make([]bool, b.N+1)
	go func() { // the client's reader: count finished RPCs, free a slot each
		defer close(done)
		for n := 0; n < b.N; {
			fh, err := http2.ReadFrameHeader(br)
			if err == nil {
				_, err = br.Discard(int(fh.Length))
			}
			if err != nil {
				b.Error(err)
				return
			}
			if fh.Type != http2.FrameHeaders {
				continue
			}
			if !fh.Flags.Has(http2.FlagHeadersEndStream) {
				gotHeaders[fh.StreamID/2] = true
				continue
			}
			if !gotHeaders[fh.StreamID/2] {
				b.Errorf("stream %d: trailers-only answer, not forwarded", fh.StreamID)
				return
			}
			n++
			<-slots
		}
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
