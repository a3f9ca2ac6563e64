package listener

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestInboundAllows: the CIDR set matches IPv4 and IPv6 clients, IPv4
// clients seen as IPv4-mapped IPv6 addresses, and refuses what it cannot
// read; a set that covers everyone is no set at all.
func TestInboundAllows(t *testing.T) {
	for _, everyone := range [][]string{nil, {}, {"0.0.0.0/0", "::/0"}, {"::/0", "10.0.0.0/8", "0.0.0.0/0"}} {
		if in, err := NewInbound(everyone); err != nil || in != nil {
			t.Errorf("NewInbound(%q) = %v, %v; want nil (everyone)", everyone, in, err)
		}
	}
	if _, err := NewInbound([]string{"10.0.0.1"}); err == nil || !strings.Contains(err.Error(), `"10.0.0.1"`) {
		t.Errorf("a CIDR without a length: %v", err)
	}
	in, err := NewInbound([]string{"10.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"})
	if err != nil {
		t.Fatal(err)
	}
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1} }
	for addr, want := range map[net.Addr]bool{
		tcp("10.1.2.3"):          true,
		tcp("192.0.2.1"):         true, // 0.0.0.0/0 covers IPv4, not IPv6
		tcp("::ffff:192.0.2.1"):  true, // an IPv4 client on a dual-stack socket
		tcp("2001:db8::1"):       true,
		tcp("2001:db9::1"):       false,
		tcp("::1"):               false,
		&net.UnixAddr{Name: "x"}: false,
	} {
		if got := in.Allows(addr); got != want {
			t.Errorf("Allows(%v) = %v, want %v", addr, got, want)
		}
	}
	if (*Inbound)(nil).Allows(tcp("::1")) != true {
		t.Error("a nil Inbound refused a client")
	}
}

// TestPlanBind: which sockets an address and ip-address-type give.
func TestPlanBind(t *testing.T) {
	for addr, want := range map[string]bindPlan{
		":443":           {"tcp4", "0.0.0.0:443", "::"},
		"0.0.0.0:443":    {"tcp4", "0.0.0.0:443", "::"},
		"127.0.0.1:8443": {"tcp4", "127.0.0.1:8443", "::1"},
		"10.0.0.5:443":   {"tcp", "10.0.0.5:443", ""},
		"[::1]:443":      {"tcp", "[::1]:443", ""},
		"[::]:443":       {"tcp", "[::]:443", ""},
		"lb.local:443":   {"tcp", "lb.local:443", ""},
	} {
		if got, err := planBind(addr); err != nil || got != want {
			t.Errorf("planBind(%q) = %+v, %v; want %+v", addr, got, err, want)
		}
	}
	if _, err := planBind("443"); err == nil {
		t.Error("an address without a port was planned")
	}
}

// denyEvents counts denials too.
type denyEvents struct {
	*events
	mu     sync.Mutex
	denied int
}

func (e *denyEvents) ConnDenied() { e.mu.Lock(); e.denied++; e.mu.Unlock() }
func (e *denyEvents) deniedCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.denied
}

// closedAtOnce dials addr and reports whether the listener closed the
// connection without answering a request (a reset or EOF within 5 s).
func closedAtOnce(t *testing.T, network, addr string) bool {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if errors.Is(err, syscall.ECONNRESET) {
		// The reset came back before the dialer looked at the socket:
		// accepted and reset, as fast as it gets.
		return true
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") // may fail on a reset socket: fine
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err == nil {
		return false // answered
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: neither answered nor closed in 5 s (read %d bytes)", addr, n)
	}
	return true
}

// TestInboundCIDRs: a client inside inbound-cidrs is served; one outside
// is closed at accept, counted as denied (not as opened), and never
// reaches the handler; a change applies to new connections at once.
func TestInboundCIDRs(t *testing.T) {
	ev := &denyEvents{events: newEvents()}
	allowLoopback, err := NewInbound([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := start(t, Options{Events: ev, Inbound: allowLoopback}, nil)
	addr := l.Addr().String()
	c := dial(t, addr)
	if resp, _, err := c.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("127.0.0.1 inside 127.0.0.0/8: %v, %v", resp, err)
	}
	c.Close()
	if n := ev.deniedCount(); n != 0 {
		t.Fatalf("%d denied while every client was allowed", n)
	}

	elsewhere, err := NewInbound([]string{"10.0.0.0/8", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetInbound(elsewhere)
	opened, _ := ev.counts()
	for i := 1; i <= 3; i++ {
		if !closedAtOnce(t, "tcp", addr) {
			t.Fatal("127.0.0.1 outside 10.0.0.0/8,2001:db8::/32 was served")
		}
		if n := ev.deniedCount(); n != i {
			t.Fatalf("denied %d, want %d", n, i)
		}
	}
	if now, _ := ev.counts(); now != opened {
		t.Errorf("denied connections counted as opened: %d -> %d", opened, now)
	}

	l.SetInbound(nil)
	c = dial(t, addr)
	if resp, _, err := c.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the CIDRs were lifted: %v, %v", resp, err)
	}
}

// TestInboundCIDRsTLS: on an HTTPS listener a denied client is closed
// before any TLS: no handshake is reported, the client's handshake fails.
func TestInboundCIDRsTLS(t *testing.T) {
	env := matrixCerts(t)
	hs := &handshakeEvents{denyEvents: denyEvents{events: newEvents()}}
	none, _ := NewInbound([]string{"192.0.2.0/24"})
	l, _ := start(t, Options{Certs: env.certs, Events: hs, Inbound: none}, nil)
	if _, _, err := env.goHandshake(l.Addr().String(), matrixClients[0]); err == nil {
		t.Fatal("a client outside inbound-cidrs completed a TLS handshake")
	}
	if hs.deniedCount() != 1 || hs.handshakes() != 0 {
		t.Fatalf("denied %d, handshakes %d; want 1, 0", hs.deniedCount(), hs.handshakes())
	}
}

// handshakeEvents also counts TLS handshakes, failed ones included.
type handshakeEvents struct {
	denyEvents
	hmu sync.Mutex
	hs  int
}

func (e *handshakeEvents) TLSHandshake(uint16, error) { e.hmu.Lock(); e.hs++; e.hmu.Unlock() }
func (e *handshakeEvents) handshakes() int {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	return e.hs
}

// TestDualStackLoopback: a dualstack listener on 127.0.0.1 also listens on
// [::1] at the same port; inbound-cidrs apply to IPv6 clients as well;
// turning dualstack off closes only the IPv6 socket (its open connections
// go on) and turning it on again while serving adds it back.
func TestDualStackLoopback(t *testing.T) {
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	probe.Close()
	ev := &denyEvents{events: newEvents()}
	l, _ := start(t, Options{Events: ev, DualStack: true}, nil)
	addrs := l.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("addresses %v, want 127.0.0.1 and [::1]", addrs)
	}
	v4, v6 := addrs[0].(*net.TCPAddr), addrs[1].(*net.TCPAddr)
	if !v4.IP.Equal(net.IPv4(127, 0, 0, 1)) || !v6.IP.Equal(net.IPv6loopback) || v4.Port != v6.Port {
		t.Fatalf("addresses %v, %v: want 127.0.0.1 and ::1 on one port", v4, v6)
	}
	c6 := dial(t, v6.String())
	if resp, _, err := c6.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("over ::1: %v, %v", resp, err)
	}

	// Only ::1 may connect: 127.0.0.1 is denied, ::1 served.
	onlyV6, _ := NewInbound([]string{"::1/128"})
	l.SetInbound(onlyV6)
	if !closedAtOnce(t, "tcp4", v4.String()) {
		t.Fatal("127.0.0.1 served with inbound-cidrs ::1/128")
	}
	if closedAtOnce(t, "tcp6", v6.String()) {
		t.Fatal("::1 closed with inbound-cidrs ::1/128")
	}
	// ... and the other way round.
	onlyV4, _ := NewInbound([]string{"127.0.0.1/32"})
	l.SetInbound(onlyV4)
	if !closedAtOnce(t, "tcp6", v6.String()) {
		t.Fatal("::1 served with inbound-cidrs 127.0.0.1/32")
	}
	if n := ev.deniedCount(); n != 2 {
		t.Fatalf("denied %d, want 2", n)
	}
	l.SetInbound(nil)

	if err := l.SetDualStack(false); err != nil {
		t.Fatal(err)
	}
	if len(l.Addrs()) != 1 {
		t.Fatalf("addresses after dualstack off: %v", l.Addrs())
	}
	if c, err := net.DialTimeout("tcp6", v6.String(), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("::1 still accepts after dualstack was turned off")
	}
	if resp, _, err := c6.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the open IPv6 connection after dualstack off: %v, %v", resp, err)
	}
	if err := l.SetDualStack(true); err != nil {
		t.Fatal(err)
	}
	c6b := dial(t, l.Addrs()[1].String())
	if resp, _, err := c6b.get("/", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("over ::1 after dualstack on again: %v, %v", resp, err)
	}
}

// TestDualStackWithoutTwin: an explicitly bound address other than the
// IPv4 wildcard or loopback gets no IPv6 socket; that is logged, not an
// error.
func TestDualStackWithoutTwin(t *testing.T) {
	var logged strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), nil))
	opts := Options{Addr: "127.0.0.2:0", DualStack: true, H2: noH2{}, Log: log, Handler: http.NotFoundHandler()}
	l, err := Listen(opts)
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 here: %v", err)
	}
	defer l.Shutdown(context.Background())
	if len(l.Addrs()) != 1 {
		t.Fatalf("addresses %v, want 127.0.0.2 only", l.Addrs())
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "no IPv6 twin") {
		t.Fatalf("nothing logged: %q", logged.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
