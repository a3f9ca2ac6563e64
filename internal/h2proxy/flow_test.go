package h2proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/proxy"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// rawCodec passes messages as bytes, so the test needs no generated code.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "raw" }
func init()                   { encoding.RegisterCodec(rawCodec{}) }
func replySize(md []byte) int { n, _ := strconv.Atoi(string(md)); return n }

// grpcTarget answers any method with a reply of the size the request
// message names (ASCII digits), respecting flow control as grpc-go does.
func grpcTarget(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		var in []byte
		if err := ss.RecvMsg(&in); err != nil {
			return err
		}
		out := make([]byte, replySize(in))
		return ss.SendMsg(&out)
	}))
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

type flowEnv struct {
	srv   *Server
	group *targetgroup.Group
	addr  string
}

func startFlowEnv(t *testing.T, limits Limits) *flowEnv {
	srv, g := newTestServer(t, grpcTarget(t), limits)
	ln := serveLoopback(t, srv)
	return &flowEnv{srv: srv, group: g, addr: ln.Addr().String()}
}

// serveLoopback serves srv on a loopback listener until the test ends.
func serveLoopback(t testing.TB, srv *Server) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(c)
		}
	}()
	return ln
}

// good makes n calls with reply bytes each through a plain grpc-go client.
func (e *flowEnv) good(t *testing.T, n, reply int) {
	t.Helper()
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		in := []byte(strconv.Itoa(reply))
		var out []byte
		err := cc.Invoke(ctx, "/test.Svc/Big", &in, &out)
		cancel()
		if err != nil || len(out) != reply {
			t.Fatalf("well-behaved call %d: %v (got %d bytes, want %d)", i, err, len(out), reply)
		}
	}
}

// settled waits until no stream is left anywhere and every window and
// budget is back where it started.
func (e *flowEnv) settled(t *testing.T) { waitSettled(t, e.srv, false, e.group) }

// waitSettled waits until every client connection of srv without streams
// has its window and response budget back, and no target of groups holds
// a request or response window; noStreams also requires every client
// connection still open to have no stream.
func waitSettled(t *testing.T, srv *Server, noStreams bool, groups ...*targetgroup.Group) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		problem := ""
		for _, f := range srv.Flow() {
			switch {
			case f.Streams != 0 && noStreams:
				problem = strconv.Itoa(f.Streams) + " streams still open on " + strconv.Quote(f.Client)
			case f.Streams == 0 && (f.RespGranted != 0 || f.RecvWindow != f.RecvWindowInitial):
				problem = "client connection not back at rest: " + strconv.Quote(f.Client)
			}
		}
		for _, g := range groups {
			for _, tg := range g.Targets() {
				if n := tg.Meter.InFlight(); n != 0 {
					problem = "target in flight " + strconv.FormatInt(n, 10)
				}
				for _, f := range tg.Conns.Flow() {
					if f.Streams == 0 && f.RecvWindow != f.RecvWindowInitial {
						problem = "target connection window " + strconv.FormatInt(f.RecvWindow, 10)
					}
				}
			}
		}
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %s; clients %+v", problem, srv.Flow())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawClient is an h2c client whose every frame the test writes.
type rawClient struct {
	c    net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	mu   sync.Mutex
	bw   *bufio.Writer
}

func dialRaw(t *testing.T, addr string, window uint32) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{c: c}
	bw := bufio.NewWriter(c)
	rc.bw = bw
	rc.fr = http2.NewFramer(bw, bufio.NewReader(c))
	rc.enc = hpack.NewEncoder(&rc.hbuf)
	bw.WriteString(http2.ClientPreface)
	rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	if window > 65535 {
		rc.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	}
	bw.Flush()
	return rc
}

// ask opens a stream asking for reply bytes.
func (rc *rawClient) ask(id uint32, reply int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/test.Svc/Big"}, {":authority", "t"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		rc.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true})
	body := []byte(strconv.Itoa(reply))
	msg := make([]byte, 5+len(body))
	binary.BigEndian.PutUint32(msg[1:], uint32(len(body)))
	copy(msg[5:], body)
	rc.fr.WriteData(id, true, msg)
	rc.flush()
}

func (rc *rawClient) reset(id uint32) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	rc.flush()
}

func (rc *rawClient) flush() { rc.bw.Flush() }

// The freeze of issue 10: streams whose client grants no window get
// large replies, then are cancelled. Their bytes must not keep the
// target connection's window, and afterwards large replies still flow.
func TestZeroWindowCancelsDoNotFreeze(t *testing.T) {
	e := startFlowEnv(t, Limits{})
	e.good(t, 2, 2<<20)
	rc := dialRaw(t, e.addr, 0)
	go io.Copy(io.Discard, rc.c)
	const streams = 60 // 60 x (at least 16 KiB held) and 8 MiB asked each
	for i := range streams {
		rc.ask(uint32(1+2*i), 8<<20)
	}
	// Let the target fill what l7lb granted, then cancel everything.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		held := int64(0)
		for _, f := range e.srv.Flow() {
			held += f.RespGranted
		}
		if held >= streams*16<<10 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range streams {
		rc.reset(uint32(1 + 2*i))
	}
	e.good(t, 10, 2<<20)
	rc.c.Close()
	e.settled(t)
}

// A client that grants the largest windows and never reads holds at
// most its connection's budget; once its writes stall past WriteStall it
// is closed, which frees everything, and other clients never notice.
func TestStalledReaderBounded(t *testing.T) {
	limits := Limits{ConnBuffer: 2 << 20, WriteStall: 500 * time.Millisecond}
	e := startFlowEnv(t, limits)
	rc := dialRaw(t, e.addr, 1<<31-1)
	const streams = 20
	for i := range streams {
		rc.ask(uint32(1+2*i), 16<<20) // 320 MiB asked, never read
	}
	var peak int64
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range e.srv.Flow() {
			held := f.RespGranted
			if q := int64(f.Queued); q > held {
				held = q
			}
			peak = max(peak, held)
			if limit := limits.ConnBuffer + streams*(16<<10); held > limit {
				t.Fatalf("stalled connection holds %d bytes, over its bound %d", held, limit)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.good(t, 10, 1<<20)
	e.settled(t)
	for _, f := range e.srv.Flow() {
		if f.Client == rc.c.LocalAddr().String() {
			t.Fatalf("stalled connection still open: %+v", f)
		}
	}
	t.Logf("peak held for the stalled client: %d bytes (bound %d)", peak, limits.ConnBuffer+streams*(16<<10))
}

// newTestServer serves one gRPC target group of one target (h2c) with
// every path routed to it.
func newTestServer(tb testing.TB, target string, limits Limits) (*Server, *targetgroup.Group) {
	host, port, _ := net.SplitHostPort(target)
	p, _ := strconv.Atoi(port)
	log := slog.New(slog.DiscardHandler)
	g := targetgroup.New(config.TargetGroup{
		Name: "ns/svc:19530", Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC,
		MaxMessageBytes: config.DefaultMaxMessageBytes,
		Endpoints:       []config.Endpoint{{Address: host, Port: p, Ready: true}},
	}, log, nil)
	tb.Cleanup(g.Close)
	table := route.Compile([]config.Rule{{Name: "r", Path: "/", PathType: config.PathPrefix, TargetGroup: "ns/svc:19530"}},
		func(string) *targetgroup.Group { return g })
	return New(Options{Routes: func() *proxy.Table { return table }, Port: 80, Log: log, Limits: limits}), g
}

// A client that grants no window and leaves its streams open is closed
// after WriteStall (GOAWAY ENHANCE_YOUR_CALM, then the socket), which
// resets its streams upstream and frees what they held.
func TestZeroWindowClientClosedAfterStall(t *testing.T) {
	e := startFlowEnv(t, Limits{WriteStall: 300 * time.Millisecond})
	rc := dialRaw(t, e.addr, 0)
	for i := range 4 {
		rc.ask(uint32(1+2*i), 1<<20)
	}
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var goAway *http2.GoAwayFrame
	for goAway == nil {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goAway = g
		}
	}
	if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", goAway.ErrCode)
	}
	if _, err := io.Copy(io.Discard, rc.c); err != nil {
		t.Fatalf("after GOAWAY: %v, want the connection closed", err)
	}
	e.settled(t)
	e.good(t, 3, 1<<20)
}
