package h2proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the targets read gzip requests
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/proxy"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// The hold path: a route table with a collection rule makes l7lb read a
// gRPC request's first message before it picks a target group. These
// tests drive it with raw frames, the way clients can split, cut and
// abandon a first message, and check where each request went, what the
// target received, and that every window comes back.

const searchPath = "/milvus.proto.milvus.MilvusService/Search"

// recordingTarget is a gRPC target that names itself in its response
// headers and keeps every first message it receives.
type recordingTarget struct {
	name string
	addr string
	mu   sync.Mutex
	msgs [][]byte
	rpcs atomic.Int64
}

func startRecordingTarget(t *testing.T, name string) *recordingTarget {
	rt := &recordingTarget{name: name}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		rt.rpcs.Add(1)
		if err := ss.SendHeader(metadata.Pairs("target", name)); err != nil {
			return err
		}
		var in []byte
		if err := ss.RecvMsg(&in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // a request without a message
			}
			return err
		}
		rt.mu.Lock()
		rt.msgs = append(rt.msgs, in)
		rt.mu.Unlock()
		out := []byte(name)
		return ss.SendMsg(&out)
	}))
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	rt.addr = ln.Addr().String()
	return rt
}

func (rt *recordingTarget) received() [][]byte {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([][]byte(nil), rt.msgs...)
}

// holdEnv is h2proxy with two target groups: "moved" (collection
// "moved", and "moved_*") goes to b, everything else to a.
type holdEnv struct {
	srv    *Server
	a, b   *recordingTarget
	groups []*targetgroup.Group
	table  atomic.Pointer[proxy.Table]
	addr   string
	ga, gb *targetgroup.Group
}

func holdRules(collections ...string) []config.Rule {
	return []config.Rule{
		{Name: "moved", Path: "/", PathType: config.PathPrefix, TargetGroup: "b",
			Conditions: []config.Condition{{Field: config.ConditionCollection, Values: collections}}},
		{Name: "rest", Path: "/", PathType: config.PathPrefix, TargetGroup: "a"},
	}
}

func startHoldEnv(t *testing.T) *holdEnv {
	e := &holdEnv{a: startRecordingTarget(t, "a"), b: startRecordingTarget(t, "b")}
	log := slog.New(slog.DiscardHandler)
	group := func(name, addr string) *targetgroup.Group {
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		g := targetgroup.New(config.TargetGroup{
			Name: name, Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC,
			MaxMessageBytes: config.DefaultMaxMessageBytes,
			Endpoints:       []config.Endpoint{{Address: host, Port: p, Ready: true}},
		}, log, nil)
		t.Cleanup(g.Close)
		return g
	}
	e.ga, e.gb = group("a", e.a.addr), group("b", e.b.addr)
	e.groups = []*targetgroup.Group{e.ga, e.gb}
	e.setRules(holdRules("moved", "moved_*"))
	e.srv = New(Options{Routes: e.table.Load, Port: 80, Log: log})
	ln := serveLoopback(t, e.srv)
	e.addr = ln.Addr().String()
	return e
}

// setRules swaps the route table, as a reload does.
func (e *holdEnv) setRules(rules []config.Rule) {
	e.table.Store(route.Compile(rules, func(name string) *targetgroup.Group {
		if name == "b" {
			return e.gb
		}
		return e.ga
	}))
}

// settled waits until the client connections have no stream and all
// their window back, and no target holds anything.
func (e *holdEnv) settled(t *testing.T) { waitSettled(t, e.srv, true, e.groups...) }

// holdClient writes frames by hand and reads each stream's outcome.
type holdClient struct {
	*rawClient
	dec     *hpack.Decoder
	results map[uint32]*streamResult
}

type streamResult struct {
	headers  map[string]string // response headers and trailers
	data     []byte
	rst      http2.ErrCode
	hasRST   bool
	finished bool
}

func dialHold(t *testing.T, addr string) *holdClient {
	hc := &holdClient{rawClient: dialRaw(t, addr, 1<<31-1), results: map[uint32]*streamResult{}}
	hc.dec = hpack.NewDecoder(4096, nil)
	return hc
}

// headers opens stream id on path; extra are more header fields.
func (hc *holdClient) headers(id uint32, path string, end bool, extra ...[2]string) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.hbuf.Reset()
	fields := [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "milvus.test"},
		{"content-type", "application/grpc"}, {"te", "trailers"}}
	for _, f := range append(fields, extra...) {
		hc.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hc.hbuf.Bytes(), EndHeaders: true, EndStream: end})
	hc.flush()
}

// data sends b on stream id in frames of at most chunk bytes.
func (hc *holdClient) data(id uint32, b []byte, chunk int, end bool) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if len(b) == 0 {
		hc.fr.WriteData(id, end, nil)
	}
	for len(b) > 0 {
		n := min(chunk, len(b))
		hc.fr.WriteData(id, end && n == len(b), b[:n])
		b = b[n:]
	}
	hc.flush()
}

// trailers ends stream id with request trailers.
func (hc *holdClient) trailers(id uint32) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.hbuf.Reset()
	hc.enc.WriteField(hpack.HeaderField{Name: "x-trailer", Value: "1"})
	hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hc.hbuf.Bytes(), EndHeaders: true, EndStream: true})
	hc.flush()
}

// await reads frames until every stream in ids finished (END_STREAM or
// RST_STREAM), for at most 10 s.
func (hc *holdClient) await(t *testing.T, ids ...uint32) map[uint32]*streamResult {
	t.Helper()
	hc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer hc.c.SetReadDeadline(time.Time{})
	open := func() bool {
		for _, id := range ids {
			if r := hc.results[id]; r == nil || !r.finished {
				return true
			}
		}
		return false
	}
	for open() {
		f, err := hc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the response: %v", err)
		}
		res := func(id uint32) *streamResult {
			r := hc.results[id]
			if r == nil {
				r = &streamResult{headers: map[string]string{}}
				hc.results[id] = r
			}
			return r
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			r := res(f.StreamID)
			fields, err := hc.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatalf("response headers: %v", err)
			}
			for _, hf := range fields {
				r.headers[hf.Name] = hf.Value
			}
			r.finished = r.finished || f.StreamEnded()
		case *http2.DataFrame:
			r := res(f.StreamID)
			r.data = append(r.data, f.Data()...)
			r.finished = r.finished || f.StreamEnded()
		case *http2.RSTStreamFrame:
			r := res(f.StreamID)
			r.rst, r.hasRST, r.finished = f.ErrCode, true, true
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v: %s", f.ErrCode, f.DebugData())
		case *http2.SettingsFrame:
			if !f.IsAck() {
				hc.mu.Lock()
				hc.fr.WriteSettingsAck()
				hc.flush()
				hc.mu.Unlock()
			}
		}
	}
	return hc.results
}

// grpcFrame prefixes a message with gRPC's 5 bytes.
func grpcFrame(compressed bool, msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	if compressed {
		out[0] = 1
	}
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

func searchMessage(t *testing.T, collection, db string) []byte {
	t.Helper()
	b, err := proto.Marshal(&milvuspb.SearchRequest{CollectionName: collection, DbName: db, Dsl: "id > 0",
		OutputFields: []string{"id", "title"}, Nq: 1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Requests are routed by their first message's collection however the
// client splits it into frames, and the target receives it unchanged.
func TestHoldRoutesByCollection(t *testing.T) {
	e := startHoldEnv(t)
	moved := searchMessage(t, "moved", "")
	books := searchMessage(t, "books", "")
	farMoved := searchMessage(t, "moved_2024", string(bytes.Repeat([]byte{'d'}, 40<<10))) // collection_name after 40 KiB
	unnamed := searchMessage(t, "", "default")
	for _, tc := range []struct {
		name       string
		path       string
		send       func(hc *holdClient, id uint32)
		wantTarget string
		wantMsg    []byte // what the target receives (nil: no message)
	}{
		{"whole message, one frame", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, moved), 1<<14, true)
		}, "b", moved},
		{"one byte per frame", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, moved), 1, true)
		}, "b", moved},
		{"prefix alone, then the rest", searchPath, func(hc *holdClient, id uint32) {
			m := grpcFrame(false, moved)
			hc.data(id, m[:3], 16, false)
			hc.data(id, m[3:], 7, true)
		}, "b", moved},
		{"other collection", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, books), 100, true)
		}, "a", books},
		{"collection_name after 40 KiB", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, farMoved), 1<<14, true)
		}, "b", farMoved},
		{"whole message naming no collection", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, unnamed), 1<<14, true)
		}, "a", unnamed},
		{"message whole, END_STREAM later in an empty frame", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, moved), 1<<14, false)
			hc.data(id, nil, 1, true)
		}, "b", moved},
		{"gzip-compressed message", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(true, gzipped(t, moved)), 1<<14, true)
		}, "b", moved},
		{"gzip-compressed, 3 bytes per frame", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(true, gzipped(t, books)), 3, true)
		}, "a", books},
		{"no message: empty DATA ends the request", searchPath, func(hc *holdClient, id uint32) {
			hc.data(id, nil, 1, true)
		}, "a", nil},
		{"no message: HEADERS end the request", searchPath, nil, "a", nil},
		{"method without a collection field", "/milvus.proto.milvus.MilvusService/ListDatabases", func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, moved), 1<<14, true)
		}, "a", moved},
		{"not a Milvus service", "/test.Svc/Big", func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, moved), 1<<14, true)
		}, "a", moved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := dialHold(t, e.addr)
			beforeA, beforeB := len(e.a.received()), len(e.b.received())
			var extra [][2]string
			if strings.HasPrefix(tc.name, "gzip") {
				extra = append(extra, [2]string{"grpc-encoding", "gzip"})
			}
			hc.headers(1, tc.path, tc.send == nil, extra...)
			if tc.send != nil {
				tc.send(hc, 1)
			}
			r := hc.await(t, 1)[1]
			if r.hasRST {
				t.Fatalf("stream reset: %v", r.rst)
			}
			if got := r.headers["target"]; got != tc.wantTarget {
				t.Fatalf("answered by target %q (grpc-status %s %q), want %q", got, r.headers["grpc-status"], r.headers["grpc-message"], tc.wantTarget)
			}
			if r.headers["grpc-status"] != "0" && tc.wantMsg != nil {
				t.Fatalf("grpc-status %s %q", r.headers["grpc-status"], r.headers["grpc-message"])
			}
			target, other, before, otherBefore := e.a, e.b, beforeA, beforeB
			if tc.wantTarget == "b" {
				target, other, before, otherBefore = e.b, e.a, beforeB, beforeA
			}
			got := target.received()[before:]
			switch {
			case tc.wantMsg == nil && len(got) != 0:
				t.Fatalf("target received %d messages, want none", len(got))
			case tc.wantMsg != nil && (len(got) != 1 || !bytes.Equal(got[0], tc.wantMsg)):
				t.Fatalf("target received %d messages (first %d bytes), want the %d bytes sent", len(got), lenFirst(got), len(tc.wantMsg))
			}
			if n := len(other.received()) - otherBefore; n != 0 {
				t.Fatalf("the other target received %d messages too", n)
			}
			hc.c.Close()
			e.settled(t)
		})
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

func lenFirst(m [][]byte) int {
	if len(m) == 0 {
		return 0
	}
	return len(m[0])
}

// Requests l7lb cannot route by their first message are answered by
// l7lb, reach no target, and give back all the window they held; a
// client that resets a held stream frees it the same way.
func TestHoldFailures(t *testing.T) {
	e := startHoldEnv(t)
	moved := grpcFrame(false, searchMessage(t, "moved", ""))
	// A db_name longer than the limit plus a frame puts collection_name
	// (written after it) out of reach.
	tooFar := grpcFrame(false, searchMessage(t, "moved", string(bytes.Repeat([]byte{'d'}, HoldLimit+32<<10))))
	cut := 9 // inside collection_name: 5-byte prefix, tag, length, "mo"
	for _, tc := range []struct {
		name     string
		extra    [][2]string
		send     func(hc *holdClient, id uint32)
		wantCode string // grpc-status; "" for a stream the client reset
	}{
		{"collection_name past the hold limit", nil, func(hc *holdClient, id uint32) {
			hc.data(id, tooFar, 1<<14, false) // the client keeps the stream open
		}, "8"},
		{"request ends inside the first message", nil, func(hc *holdClient, id uint32) {
			hc.data(id, moved[:cut], 64, true)
		}, "13"},
		{"prefix only, then END_STREAM", nil, func(hc *holdClient, id uint32) {
			hc.data(id, moved[:4], 64, true)
		}, "13"},
		{"trailers inside the first message", nil, func(hc *holdClient, id uint32) {
			hc.data(id, moved[:cut], 64, false)
			hc.trailers(id)
		}, "13"},
		{"compressed with an encoding l7lb cannot read", [][2]string{{"grpc-encoding", "snappy"}}, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(true, moved[5:]), 64, false)
		}, "12"},
		{"compressed flag without an encoding", nil, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(true, moved[5:]), 64, false)
		}, "12"},
		{"gzip flagged, not gzip", [][2]string{{"grpc-encoding", "gzip"}}, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(true, []byte("definitely not a gzip stream")), 64, false)
		}, "13"},
		{"not protobuf", nil, func(hc *holdClient, id uint32) {
			hc.data(id, grpcFrame(false, []byte{0, 1, 2, 3}), 64, false)
		}, "13"},
		{"deadline passes while held", [][2]string{{"grpc-timeout", "150m"}}, func(hc *holdClient, id uint32) {
			hc.data(id, moved[:cut], 64, false)
		}, "4"},
		{"client resets a held stream", nil, func(hc *holdClient, id uint32) {
			hc.data(id, moved[:cut], 64, false)
			hc.reset(id)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := dialHold(t, e.addr)
			rpcs := e.a.rpcs.Load() + e.b.rpcs.Load()
			var reached int64 // requests that should reach a target
			hc.headers(1, searchPath, false, tc.extra...)
			tc.send(hc, 1)
			if tc.wantCode == "" {
				// Nothing comes back for a reset stream; a second request
				// on the same connection shows it is still fine.
				hc.headers(3, searchPath, false)
				hc.data(3, moved, 1<<14, true)
				r := hc.await(t, 3)[3]
				if r.headers["target"] != "b" || r.headers["grpc-status"] != "0" {
					t.Fatalf("request after the reset: %v", r.headers)
				}
				reached = 1 // the second request
			} else {
				r := hc.await(t, 1)[1]
				if r.headers["grpc-status"] != tc.wantCode || r.headers["target"] != "" {
					t.Fatalf("got grpc-status %q %q from target %q, want %s from l7lb",
						r.headers["grpc-status"], r.headers["grpc-message"], r.headers["target"], tc.wantCode)
				}
				if r.headers["grpc-message"] == "" {
					t.Fatal("no grpc-message saying why")
				}
			}
			if n := e.a.rpcs.Load() + e.b.rpcs.Load() - rpcs; n != reached {
				t.Fatalf("%d requests reached a target, want %d", n, reached)
			}
			hc.c.Close()
			e.settled(t)
		})
	}
}

// Held bytes are the client's connection window until they leave: many
// streams holding half a message each take exactly their bytes from it,
// and once their messages complete and go out, all of it comes back.
func TestHoldWindowAccounting(t *testing.T) {
	e := startHoldEnv(t)
	hc := dialHold(t, e.addr)
	const streams = 40
	msg := grpcFrame(false, searchMessage(t, "moved", string(bytes.Repeat([]byte{'d'}, 50<<10))))
	cut := 30 << 10 // before collection_name
	for i := range streams {
		id := uint32(1 + 2*i)
		hc.headers(id, searchPath, false)
		hc.data(id, msg[:cut], 1<<14, false)
	}
	want := int64(connRecvWindow - streams*cut)
	var f ConnFlow
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if fl := e.srv.Flow(); len(fl) == 1 {
			f = fl[0]
			if f.Streams == streams && f.RecvWindow == want {
				break
			}
		}
	}
	if f.Streams != streams || f.RecvWindow != want {
		t.Fatalf("while held: %d streams, connection window %d; want %d streams, window %d", f.Streams, f.RecvWindow, streams, want)
	}
	if n := e.a.rpcs.Load() + e.b.rpcs.Load(); n != 0 {
		t.Fatalf("%d requests reached a target before their collection was known", n)
	}
	ids := make([]uint32, streams)
	for i := range streams {
		ids[i] = uint32(1 + 2*i)
		hc.data(ids[i], msg[cut:], 1<<14, true)
	}
	for id, r := range hc.await(t, ids...) {
		if r.headers["target"] != "b" || r.headers["grpc-status"] != "0" {
			t.Fatalf("stream %d: %v", id, r.headers)
		}
	}
	e.settled(t)
}

// Routing waits for the first message, so a reload between a request's
// HEADERS and its message routes it by the table in force when the
// message arrives.
func TestHoldRoutesByTableAtMessage(t *testing.T) {
	e := startHoldEnv(t)
	hc := dialHold(t, e.addr)
	msg := grpcFrame(false, searchMessage(t, "moved", ""))
	hc.headers(1, searchPath, false)
	hc.data(1, msg[:10], 64, false)
	// Wait until l7lb holds the stream, then move "moved" back to a.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if fl := e.srv.Flow(); len(fl) == 1 && fl[0].RecvWindow == connRecvWindow-10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream not held: %+v", e.srv.Flow())
		}
	}
	e.setRules(holdRules("elsewhere"))
	hc.data(1, msg[10:], 64, true)
	if r := hc.await(t, 1)[1]; r.headers["target"] != "a" {
		t.Fatalf("answered by %q, want a (the table at the message's arrival)", r.headers["target"])
	}
	hc.c.Close()
	e.settled(t)
}

// A held stream's deadline and its message racing each other: whichever
// wins, the client gets one answer and every window comes back (run with
// -race).
func TestHoldDeadlineRacesMessage(t *testing.T) {
	e := startHoldEnv(t)
	msg := grpcFrame(false, searchMessage(t, "moved", ""))
	hc := dialHold(t, e.addr)
	const streams = 60
	ids := make([]uint32, streams)
	for i := range streams {
		ids[i] = uint32(1 + 2*i)
		hc.headers(ids[i], searchPath, false, [2]string{"grpc-timeout", "30m"})
		hc.data(ids[i], msg[:12], 64, false)
	}
	for _, id := range ids {
		time.Sleep(time.Millisecond) // spread the completions around the deadline
		hc.data(id, msg[12:], 64, true)
	}
	codes := map[string]int{}
	for _, id := range ids {
		r := hc.await(t, ids...)[id]
		codes[r.headers["grpc-status"]]++
		if s := r.headers["grpc-status"]; s != "0" && s != "4" {
			t.Fatalf("stream %d: grpc-status %q %q", id, s, r.headers["grpc-message"])
		}
	}
	t.Logf("outcomes by grpc-status: %v", codes)
	hc.c.Close()
	e.settled(t)
}

// Request trailers end the request at l7lb and are not forwarded: a
// grpc-go target (Milvus) closes its whole connection on a second HEADERS
// for a stream, which would fail every other RPC on that connection.
// Stream 1 waits at the target, mid-message, on the target connection
// stream 3 uses; stream 3 sends trailers in the middle of its message;
// stream 1 must still complete.
func TestRequestTrailersDoNotReachTarget(t *testing.T) {
	e := startHoldEnv(t)
	e.setRules(holdRules()) // no collection rule: the ordinary path
	hc := dialHold(t, e.addr)
	msg := grpcFrame(false, searchMessage(t, "books", ""))
	hc.headers(1, searchPath, false)
	hc.data(1, msg[:20], 64, false)
	hc.headers(3, searchPath, false)
	hc.data(3, msg[:20], 64, false)
	hc.trailers(3)
	r := hc.await(t, 3)[3]
	if r.headers["target"] != "a" || r.headers["grpc-status"] != "13" {
		// The target saw the request end inside a message.
		t.Fatalf("stream with trailers: %v; want INTERNAL from the target", r.headers)
	}
	hc.data(1, msg[20:], 64, true)
	r = hc.await(t, 1)[1]
	if r.headers["target"] != "a" || r.headers["grpc-status"] != "0" {
		t.Fatalf("the other stream on the target connection: %v", r.headers)
	}
	hc.c.Close()
	e.settled(t)
}
