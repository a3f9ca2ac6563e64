package listener

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/mtls"
)

// tcpPair is a connected pair of loopback TCP sockets.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// lingerClose, on raw sockets: the server has bytes of the client it never
// read (a TLS 1.3 client's Finished and HTTP/2 preface) when it gives up
// after writing its alert. A plain Close would reset the connection and
// the client's next read would fail with "connection reset"; lingerClose
// lets the client read the alert and then end of stream, accepts what the
// client writes meanwhile, and returns once the client closes, well
// before its bound.
func TestLingerCloseLetsClientReadAlert(t *testing.T) {
	client, server := tcpPair(t)
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Write(bytes.Repeat([]byte("x"), 4096)); err != nil {
		t.Fatal(err)
	}
	alert := []byte("\x15\x03\x03\x00\x02\x02\x74") // a TLS alert record: certificate_required
	// The server reads part of what the client sent, so that the rest is
	// certainly unread, and answers with the alert.
	if _, err := io.ReadFull(server, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write(alert); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	const bound = 10 * time.Second
	go func() { lingerClose(server, bound, 1<<20); close(done) }()

	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("client read: %v after %q; want the alert, then end of stream", err, got)
	}
	if !bytes.Equal(got, alert) {
		t.Fatalf("client read %q, want the alert %q", got, alert)
	}
	// The client may still write (the server is draining), then closes.
	if _, err := client.Write([]byte("late SETTINGS frame")); err != nil {
		t.Errorf("client write while the server drains: %v", err)
	}
	start := time.Now()
	client.Close()
	select {
	case <-done:
		if d := time.Since(start); d >= bound {
			t.Errorf("lingerClose returned after %v: it waited for its bound, not for the client's close", d)
		}
	case <-time.After(bound + 5*time.Second):
		t.Fatal("lingerClose did not return")
	}
}

// lingerClose is bounded: a client that keeps the connection open and
// silent is cut at the deadline, one that keeps sending after max bytes.
func TestLingerCloseBounded(t *testing.T) {
	t.Run("silent client", func(t *testing.T) {
		client, server := tcpPair(t)
		done := make(chan struct{})
		go func() { lingerClose(server, 50*time.Millisecond, 1<<20); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("lingerClose did not return at its deadline")
		}
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("client read = %v, want EOF", err)
		}
	})
	t.Run("client keeps sending", func(t *testing.T) {
		client, server := tcpPair(t)
		done := make(chan struct{})
		const max = 64 << 10
		go func() { lingerClose(server, time.Hour, max); close(done) }()
		buf := make([]byte, 16<<10)
		client.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for i := 0; i < 1000; i++ { // ~16 MiB at most; the server stops after 64 KiB
			select {
			case <-done:
				return
			default:
			}
			if _, err := client.Write(buf); err != nil {
				break // the server closed: reset, or a full buffer at the deadline
			}
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("lingerClose did not stop after max bytes")
		}
	})
}

// TestRefusedHandshakeAlertReachesClient: through the listener, a TLS 1.3
// client refused by verify writes (as gRPC does, at once after its side of
// the handshake, and again once l7lb has reported the failure) and then
// reads the alert, not a reset.
func TestRefusedHandshakeAlertReachesClient(t *testing.T) {
	env := newMTLSEnv(t)
	foreign := leafOf(t, env.otherCA, false)
	cases := []struct {
		name string
		cert *tls.Certificate
		want string
	}{
		{"no certificate", nil, "certificate required"},
		{"wrong CA", foreign, "bad certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := &errEvents{events: events{closed: make(chan struct{}, 4)}, hs: make(chan struct{}, 4)}
			l, _ := start(t, Options{Certs: env.certs, Events: ev, ClientAuth: &mtls.Config{Mode: mtls.ModeVerify, Pool: env.clientCA.Pool()}}, nil)
			cfg := &tls.Config{RootCAs: env.serverCA.Pool(), ServerName: "lb.test", NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13}
			if c.cert != nil {
				cfg.Certificates = []tls.Certificate{*c.cert}
			}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), cfg)
			if err != nil {
				t.Fatalf("client handshake: %v (a TLS 1.3 client learns of the refusal only when it reads)", err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write([]byte(clientPreface)); err != nil {
				t.Fatalf("client write of the preface: %v", err)
			}
			if err := ev.next(t); err == nil {
				t.Fatal("l7lb accepted the handshake")
			}
			for i := 0; i < 2; i++ {
				if _, err := conn.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}); err != nil { // SETTINGS
					t.Errorf("client write %d after the refusal: %v; want it to succeed (l7lb half-closed, not reset)", i, err)
				}
			}
			_, err = conn.Read(make([]byte, 1))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("client read: %v; want the alert %q", err, c.want)
			}
		})
	}
}
