package runtime

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/listener"
	"github.com/l7lb/l7lb/internal/pki"
)

type noCerts struct{}

func (noCerts) Load(arn string) (tls.Certificate, error) {
	return tls.Certificate{}, fmt.Errorf("certificate %s not found", arn)
}

func snapshot(path string, extra ...config.Listener) *config.Snapshot {
	return &config.Snapshot{
		Listeners: append([]config.Listener{{
			Port: 80, Protocol: config.ProtocolHTTP, Scheme: config.SchemeInternal,
			Rules: []config.Rule{{Name: "r", Path: path, PathType: config.PathPrefix, TargetGroup: "ns/svc:80"}},
		}}, extra...),
		TargetGroups: []config.TargetGroup{{Name: "ns/svc:80", Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC}},
	}
}

func get(t *testing.T, addr, path string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestApplySwapsAndRefuses: a new snapshot replaces the routes on the same
// listener socket; a snapshot that cannot be built (unknown certificate)
// changes nothing.
func TestApplySwapsAndRefuses(t *testing.T) {
	rt := New(Options{Log: slog.New(slog.DiscardHandler), Certs: noCerts{}, Bind: func(config.Listener) string { return "127.0.0.1:0" }})
	defer rt.Shutdown(context.Background())
	if err := rt.Apply(snapshot("/a")); err != nil {
		t.Fatal(err)
	}
	addr := rt.Addrs()[80].String()
	// /a routes to a group without targets (503); /b has no rule (404).
	if got := get(t, addr, "/a"); got != http.StatusServiceUnavailable {
		t.Fatalf("/a: %d", got)
	}
	if got := get(t, addr, "/b"); got != http.StatusNotFound {
		t.Fatalf("/b: %d", got)
	}

	if err := rt.Apply(snapshot("/b")); err != nil {
		t.Fatal(err)
	}
	if now := rt.Addrs()[80].String(); now != addr {
		t.Fatalf("listener re-bound: %s -> %s", addr, now)
	}
	if got := get(t, addr, "/a"); got != http.StatusNotFound {
		t.Fatalf("/a after swap: %d", got)
	}
	if got := get(t, addr, "/b"); got != http.StatusServiceUnavailable {
		t.Fatalf("/b after swap: %d", got)
	}

	bad := snapshot("/c", config.Listener{Port: 443, Protocol: config.ProtocolHTTPS, CertificateARNs: []string{"arn:missing"}})
	err := rt.Apply(bad)
	if err == nil || !strings.Contains(err.Error(), "arn:missing") {
		t.Fatalf("Apply with an unknown certificate: %v", err)
	}
	if _, opened := rt.Addrs()[443]; opened {
		t.Fatal("a refused snapshot opened a listener")
	}
	if got := get(t, addr, "/b"); got != http.StatusServiceUnavailable {
		t.Fatalf("/b after the refused snapshot: %d", got)
	}
}

// TestApplyRefusesBusyPort: a port that cannot be bound refuses the whole
// snapshot.
func TestApplyRefusesBusyPort(t *testing.T) {
	first := New(Options{Log: slog.New(slog.DiscardHandler), Certs: noCerts{}, Bind: func(config.Listener) string { return "127.0.0.1:0" }})
	defer first.Shutdown(context.Background())
	if err := first.Apply(snapshot("/")); err != nil {
		t.Fatal(err)
	}
	busy := first.Addrs()[80].String()
	second := New(Options{Log: slog.New(slog.DiscardHandler), Certs: noCerts{}, Bind: func(config.Listener) string { return busy }})
	defer second.Shutdown(context.Background())
	if err := second.Apply(snapshot("/")); err == nil || !strings.Contains(err.Error(), "listener 80") {
		t.Fatalf("Apply on a busy port: %v", err)
	}
	if second.Snapshot() != nil {
		t.Fatal("a refused snapshot became current")
	}
}

// TestListenerLimits: the connection cap in Options covers every listener
// together, and the HTTP/1.1 limits reach each listener.
func TestListenerLimits(t *testing.T) {
	second := config.Listener{Port: 81, Protocol: config.ProtocolHTTP, Scheme: config.SchemeInternal}
	request := func(t *testing.T, addr, header string) (*http.Response, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: test\r\n%s\r\n", header); err != nil {
			return nil, err
		}
		return http.ReadResponse(bufio.NewReader(c), nil)
	}
	tests := []struct {
		name  string
		opts  func(*Options)
		check func(t *testing.T, addrs map[int]net.Addr)
	}{
		{"one cap for all listeners", func(o *Options) { o.Conns = listener.NewConnLimit(1, nil) }, func(t *testing.T, addrs map[int]net.Addr) {
			// The first connection, kept open, takes the only slot.
			if resp, err := request(t, addrs[80].String(), ""); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("first connection: %v, %v", resp, err)
			}
			if resp, err := request(t, addrs[81].String(), ""); err == nil {
				t.Fatalf("a connection past the cap on another listener was served: %s", resp.Status)
			}
		}},
		{"HTTP/1.1 header cap", func(o *Options) { o.HTTP1.MaxHeaderBytes = 8 << 10 }, func(t *testing.T, addrs map[int]net.Addr) {
			for _, port := range []int{80, 81} {
				resp, err := request(t, addrs[port].String(), "X-Big: "+strings.Repeat("a", 16<<10)+"\r\n")
				if resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
					t.Fatalf("listener %d: %v, %v; want 431", port, resp, err)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Log: slog.New(slog.DiscardHandler), Certs: noCerts{}, Bind: func(config.Listener) string { return "127.0.0.1:0" }}
			tc.opts(&opts)
			rt := New(opts)
			defer rt.Shutdown(context.Background())
			if err := rt.Apply(snapshot("/a", second)); err != nil {
				t.Fatal(err)
			}
			tc.check(t, rt.Addrs())
		})
	}
}

// pkiCerts loads every ARN as one certificate for milvus.test.
type pkiCerts struct{ cert tls.Certificate }

func (p pkiCerts) Load(string) (tls.Certificate, error) { return p.cert, nil }

// TestApplyAccess: ssl-policy, inbound-cidrs and ip-address-type reach the
// listeners, on the first Apply and on later ones, without re-binding;
// a snapshot with a policy l7lb does not know is refused whole.
func TestApplyAccess(t *testing.T) {
	ca, err := pki.NewCA("runtime access CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"milvus.test"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rt := New(Options{Log: slog.New(slog.DiscardHandler), Certs: pkiCerts{leaf.TLSCertificate()}, Bind: func(config.Listener) string { return "127.0.0.1:0" }})
	defer rt.Shutdown(context.Background())
	snap := func(policy string, cidrs []string, ipType config.IPAddressType) *config.Snapshot {
		s := snapshot("/a", config.Listener{Port: 443, Protocol: config.ProtocolHTTPS, Scheme: config.SchemeInternal,
			CertificateARNs: []string{"arn:a"}, SSLPolicy: policy})
		for i := range s.Listeners {
			s.Listeners[i].InboundCIDRs = cidrs
			s.Listeners[i].IPAddressType = ipType
		}
		return s
	}
	handshake := func(addr string, version uint16) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: ca.Pool(), ServerName: "milvus.test", MinVersion: version, MaxVersion: version})
		if err == nil {
			c.Close()
		}
		return err
	}
	// served reports whether an HTTP request on addr got any answer.
	served := func(addr string) bool {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + addr + "/a")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}

	if err := rt.Apply(snap("ELBSecurityPolicy-TLS13-1-3-2021-06", []string{"10.0.0.0/8"}, "")); err != nil {
		t.Fatal(err)
	}
	https, http80 := rt.Addrs()[443].String(), rt.Addrs()[80].String()
	if served(http80) {
		t.Fatal("127.0.0.1 served with inbound-cidrs 10.0.0.0/8")
	}
	if err := handshake(https, tls.VersionTLS13); err == nil {
		t.Fatal("TLS handshake from outside inbound-cidrs")
	}

	if err := rt.Apply(snap("ELBSecurityPolicy-TLS13-1-3-2021-06", []string{"127.0.0.1/32"}, "")); err != nil {
		t.Fatal(err)
	}
	if !served(http80) {
		t.Fatal("127.0.0.1 not served with inbound-cidrs 127.0.0.1/32")
	}
	if err := handshake(https, tls.VersionTLS13); err != nil {
		t.Fatalf("TLS 1.3 under TLS13-1-3-2021-06: %v", err)
	}
	if err := handshake(https, tls.VersionTLS12); err == nil {
		t.Fatal("TLS 1.2 accepted under TLS13-1-3-2021-06")
	}

	// l7lb's default policy, TLS13-1-2-2021-06, takes TLS 1.2 and 1.3;
	// dualstack adds [::1] at the same port.
	if err := rt.Apply(snap("", nil, config.IPAddressTypeDualStack)); err != nil {
		t.Fatal(err)
	}
	if now := rt.Addrs()[443].String(); now != https {
		t.Fatalf("listener re-bound: %s -> %s", https, now)
	}
	if err := handshake(https, tls.VersionTLS12); err != nil {
		t.Fatalf("TLS 1.2 under the default policy: %v", err)
	}
	if err := handshake(https, tls.VersionTLS13); err != nil {
		t.Fatalf("TLS 1.3 under the default policy: %v", err)
	}
	_, port, _ := net.SplitHostPort(http80)
	v6 := net.JoinHostPort("::1", port)
	ipv6 := true
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		ipv6 = false
		t.Logf("no IPv6 loopback here (%v): the dualstack part is not checked", err)
	} else {
		ln.Close()
	}
	if ipv6 && !served(v6) {
		t.Fatal("dualstack: nothing on [::1] at the listener's port")
	}
	if err := rt.Apply(snap("", nil, config.IPAddressTypeIPv4)); err != nil {
		t.Fatal(err)
	}
	if ipv6 && served(v6) {
		t.Fatal("ipv4 again: [::1] still served")
	}

	err = rt.Apply(snap("ELBSecurityPolicy-TLS13-1-2-PQ-2025-09", nil, ""))
	if err == nil || !strings.Contains(err.Error(), "listener 443: ssl-policy") || !strings.Contains(err.Error(), "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09") {
		t.Fatalf("Apply with an unknown policy: %v", err)
	}
	if err := handshake(https, tls.VersionTLS12); err != nil {
		t.Fatalf("after the refused snapshot: %v", err)
	}
}
