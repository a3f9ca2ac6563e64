package fakemilvus

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// TestKillIsAbrupt: no GOAWAY, the socket just dies, and an in-flight RPC
// fails on the client.
func TestKillIsAbrupt(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1})
	r := c.Replicas()[0]
	raw := dialRawH2(t, r.Addr())
	errc := startHeldUnary(t, r, time.Minute)

	start := time.Now()
	r.Kill()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Kill took %v; it must not wait for in-flight RPCs", took)
	}
	f, err := raw.next(3*time.Second, isGoAway)
	if f != nil {
		t.Fatalf("got %v, want the connection to die without GOAWAY", f)
	}
	if errors.Is(err, errTimeout) {
		t.Fatal("connection still open 3 s after Kill")
	}
	select {
	case err := <-errc:
		if status.Code(err) != codes.Unavailable {
			t.Errorf("in-flight RPC err = %v, want Unavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight RPC did not fail after Kill")
	}
	if r.Up() {
		t.Error("Up after Kill")
	}
	if conn, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		conn.Close()
		t.Error("new connection accepted after Kill")
	}
}

// TestStopIsGraceful: GOAWAY on the wire, in-flight RPCs complete, then the
// port is closed.
func TestStopIsGraceful(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1})
	r := c.Replicas()[0]
	raw := dialRawH2(t, r.Addr())
	errc := startHeldUnary(t, r, 500*time.Millisecond)

	stopped := make(chan struct{})
	go func() { r.Stop(); close(stopped) }()
	f := raw.expect(t, "GOAWAY", 3*time.Second, isGoAway).(*http2.GoAwayFrame)
	if f.ErrCode != http2.ErrCodeNo {
		t.Errorf("GOAWAY code = %v, want NO_ERROR", f.ErrCode)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("in-flight RPC failed during Stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight RPC did not finish")
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return after in-flight RPCs finished")
	}
	if conn, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		conn.Close()
		t.Error("new connection accepted after Stop")
	}
}

func TestStopGraceBoundsDrain(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1, StopGrace: 300 * time.Millisecond})
	r := c.Replicas()[0]
	errc := startHeldUnary(t, r, time.Minute)
	start := time.Now()
	r.Stop()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Stop took %v with a 300ms grace", took)
	}
	if err := <-errc; err == nil {
		t.Error("held RPC succeeded; want it cut after the grace period")
	}
}

func TestKillCutsGracefulStop(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1, StopGrace: time.Minute})
	r := c.Replicas()[0]
	errc := startHeldUnary(t, r, time.Minute)
	stopped := make(chan struct{})
	go func() { r.Stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond) // let Stop start draining
	r.Kill()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop still draining after Kill")
	}
	if err := <-errc; status.Code(err) != codes.Unavailable {
		t.Errorf("in-flight RPC err = %v, want Unavailable", err)
	}
}

func TestRestart(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1})
	r := c.Replicas()[0]
	addr := r.Addr()
	cc := dial(t, addr)
	tests := []struct {
		name string
		down func()
	}{
		{"after kill", r.Kill},
		{"after stop", r.Stop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.down()
			if err := r.Restart(); err != nil {
				t.Fatalf("restart: %v", err)
			}
			if r.Addr() != addr {
				t.Errorf("addr %s after restart, want %s", r.Addr(), addr)
			}
			// The same ClientConn reconnects to the same address.
			var err error
			for i := 0; i < 50; i++ {
				if _, err = echo.NewClient(cc).Unary(testCtx(t), nil); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("unary after restart: %v", err)
			}
		})
	}
	if err := r.Restart(); err == nil {
		t.Error("Restart of a running replica succeeded")
	}
}

// TestKeepaliveEnforcement: a client pinging every second (under the 5 s
// MinTime) is sent GOAWAY ENHANCE_YOUR_CALM "too_many_pings", as Milvus does.
func TestKeepaliveEnforcement(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{Replicas: 1})
	raw := dialRawH2(t, c.Replicas()[0].Addr())
	var goaway *http2.GoAwayFrame
	for i := 0; i < 8 && goaway == nil; i++ {
		raw.write(t, func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{byte(i)}) })
		f, err := raw.next(time.Second, isGoAway)
		switch {
		case f != nil:
			goaway = f.(*http2.GoAwayFrame)
		case !errors.Is(err, errTimeout):
			t.Fatalf("connection closed without GOAWAY: %v", err)
		}
	}
	if goaway == nil {
		t.Fatal("no GOAWAY after 8 pings 1 s apart")
	}
	if goaway.ErrCode != http2.ErrCodeEnhanceYourCalm || string(goaway.DebugData()) != "too_many_pings" {
		t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", goaway.ErrCode, goaway.DebugData())
	}
}

// TestSinglePingAllowed: one ping (PermitWithoutStream) is answered without a
// strike. Pinging at the 5 s MinTime itself would make the test too slow.
func TestSinglePingAllowed(t *testing.T) {
	c := startCluster(t, Options{Replicas: 1})
	raw := dialRawH2(t, c.Replicas()[0].Addr())
	raw.write(t, func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{42}) })
	raw.expect(t, "PING ack", 2*time.Second, func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && p.Data[0] == 42
	})
	if f, _ := raw.next(300*time.Millisecond, isGoAway); f != nil {
		t.Errorf("GOAWAY after one ping: %v", f)
	}
}
