package runtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/config"
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
