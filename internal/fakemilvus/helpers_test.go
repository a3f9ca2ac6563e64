package fakemilvus

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// startCluster starts a cluster on random loopback ports, closed at cleanup.
func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	if opts.StopGrace == 0 {
		opts.StopGrace = 5 * time.Second
	}
	c, err := Start(opts)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// startHeldUnary starts a unary echo call that r holds for hold before
// answering, and returns once r has received it: the call is then in flight
// for Stop or Kill to act on. The call's error arrives on the channel.
func startHeldUnary(t *testing.T, r *Replica, hold time.Duration) <-chan error {
	t.Helper()
	ec := echo.NewClient(dial(t, r.Addr()))
	ctx := echo.WithHold(testCtx(t), hold)
	calls := r.Echo().Calls()
	errc := make(chan error, 1)
	go func() { _, err := ec.Unary(ctx, nil); errc <- err }()
	waitFor(t, "in-flight call", func() bool { return r.Echo().Calls() > calls })
	return errc
}

// rawH2 is a bare HTTP/2 connection, so tests can see frames (GOAWAY, RST)
// that grpc-go hides behind status codes. A reader goroutine answers PING and
// SETTINGS and forwards every frame; errEOF-like read errors end the stream.
type rawH2 struct {
	conn   net.Conn
	wmu    sync.Mutex
	fr     *http2.Framer
	frames chan http2.Frame
	err    chan error // the read error that ended the connection
}

func dialRawH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &rawH2{conn: conn, fr: http2.NewFramer(conn, conn), frames: make(chan http2.Frame, 64), err: make(chan error, 1)}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatalf("write preface: %v", err)
	}
	h.write(t, func(fr *http2.Framer) error { return fr.WriteSettings() })
	go h.readLoop()
	// The server's SETTINGS means the gRPC transport is established.
	h.expect(t, "server SETTINGS", 5*time.Second, func(f http2.Frame) bool {
		s, ok := f.(*http2.SettingsFrame)
		return ok && !s.IsAck()
	})
	return h
}

func (h *rawH2) write(t *testing.T, fn func(*http2.Framer) error) {
	t.Helper()
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if err := fn(h.fr); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

func (h *rawH2) readLoop() {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.err <- err
			close(h.frames)
			return
		}
		h.wmu.Lock()
		switch f := f.(type) {
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.fr.WritePing(true, f.Data)
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		}
		h.wmu.Unlock()
		h.frames <- f
	}
}

// expect waits for a frame matching want, failing on timeout or close.
func (h *rawH2) expect(t *testing.T, what string, timeout time.Duration, want func(http2.Frame) bool) http2.Frame {
	t.Helper()
	f, err := h.next(timeout, want)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return f
}

var errTimeout = errors.New("timed out")

// next returns the first frame matching want, or the read error that closed
// the connection, or errTimeout.
func (h *rawH2) next(timeout time.Duration, want func(http2.Frame) bool) (http2.Frame, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case f, ok := <-h.frames:
			if !ok {
				return nil, <-h.err
			}
			if want(f) {
				return f, nil
			}
		case <-t.C:
			return nil, errTimeout
		}
	}
}

func isGoAway(f http2.Frame) bool {
	_, ok := f.(*http2.GoAwayFrame)
	return ok
}
