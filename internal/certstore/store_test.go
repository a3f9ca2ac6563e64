package certstore

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var arnRE = regexp.MustCompile(`^arn:l7lb:acm:local:000000000000:certificate/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestImportRoundTrip(t *testing.T) {
	p := newTestPKI(t)
	s := openTestStore(t)
	now := time.Now()

	c, warns, err := s.Import(p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), now)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	if !arnRE.MatchString(c.ARN) {
		t.Errorf("ARN %q does not match %v", c.ARN, arnRE)
	}
	if !c.ImportedAt.Equal(now) {
		t.Errorf("ImportedAt = %v, want %v", c.ImportedAt, now)
	}

	id, _ := ParseARN(c.ARN)
	for _, tt := range []struct {
		path string
		mode os.FileMode
	}{
		{s.Dir(), 0o700},
		{filepath.Join(s.Dir(), id), 0o700},
		{filepath.Join(s.Dir(), id, keyFile), 0o600},
	} {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.path, fi.Mode().Perm(), tt.mode)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(s.Dir(), ".*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %q", leftovers)
	}

	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !reflect.DeepEqual(list[0], c) {
		t.Errorf("List = %+v, want [%+v]", list, c)
	}
	got, err := s.Describe(c.ARN)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("Describe = %+v, want %+v", got, c)
	}
	if !s.Has(c.ARN) {
		t.Error("Has = false after Import")
	}

	tc, err := s.Load(c.ARN)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// The root stays out of what is served; the intermediate goes in.
	if len(tc.Certificate) != 2 {
		t.Errorf("Load served %d certificates, want leaf + intermediate", len(tc.Certificate))
	}
	handshake(t, tc, p)

	if err := s.Delete(c.ARN); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if s.Has(c.ARN) {
		t.Error("Has = true after Delete")
	}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Errorf("List after Delete = %v, %v", list, err)
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) != 0 {
		t.Errorf("store not empty after Delete: %v", entries)
	}
}

// handshake serves tc on 127.0.0.1 and checks that a client trusting only
// p's root accepts it for host.
func handshake(t *testing.T, tc tls.Certificate, p testPKI) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		srv := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{tc}})
		if err := srv.Handshake(); err != nil {
			srvErr <- err
			return
		}
		_, err = io.Copy(io.Discard, srv) // until the client closes
		srvErr <- err
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{RootCAs: p.root.Pool(), ServerName: host}}
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	state := conn.(*tls.Conn).ConnectionState()
	if len(state.VerifiedChains) == 0 || !state.VerifiedChains[0][len(state.VerifiedChains[0])-1].Equal(p.root.Cert) {
		t.Errorf("client did not verify up to the test root")
	}
	conn.Close()
	if err := <-srvErr; err != nil {
		t.Errorf("server: %v", err)
	}
}

func TestReimportGetsNewARN(t *testing.T) {
	p := newTestPKI(t)
	s := openTestStore(t)
	first, _, err := s.Import(p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	second, warns, err := s.Import(p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if first.ARN == second.ARN {
		t.Errorf("re-import reused ARN %s", first.ARN)
	}
	if !hasWarning(warns, "already imported as "+first.ARN) {
		t.Errorf("warnings = %q, want one naming %s", warns, first.ARN)
	}
	if list, _ := s.List(); len(list) != 2 || list[0].ARN != first.ARN {
		t.Errorf("List = %v, want both, oldest first", list)
	}
}

func TestFailedImportLeavesNoTrace(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t)
	s := openTestStore(t)
	if _, _, err := s.Import(p.leaf.CertPEM(), p.leaf.ChainPEM(), other.leaf.KeyPEM(), time.Now()); err == nil {
		t.Fatal("Import with a foreign key succeeded")
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) != 0 {
		t.Errorf("store not empty after a failed import: %v", entries)
	}
}

func TestUnknownARN(t *testing.T) {
	s := openTestStore(t)
	ops := []struct {
		name string
		do   func(arn string) error
	}{
		{"Describe", func(a string) error { _, err := s.Describe(a); return err }},
		{"Delete", s.Delete},
		{"Load", func(a string) error { _, err := s.Load(a); return err }},
	}
	arns := []struct {
		name    string
		arn     string
		wantBad bool // also ErrInvalidARN
	}{
		{"well-formed", ARN("0b5c1f7e-52f0-4b8e-9c1a-3f3f2d7c9e10"), false},
		{"AWS ARN", "arn:aws:acm:us-east-2:123456789012:certificate/0b5c1f7e-52f0-4b8e-9c1a-3f3f2d7c9e10", true},
		{"path traversal", ARNPrefix + "../../etc", true},
		{"upper-case id", ARN("0B5C1F7E-52F0-4B8E-9C1A-3F3F2D7C9E10"), true},
	}
	for _, op := range ops {
		for _, a := range arns {
			t.Run(op.name+"/"+a.name, func(t *testing.T) {
				err := op.do(a.arn)
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
				if errors.Is(err, ErrInvalidARN) != a.wantBad {
					t.Errorf("errors.Is(err, ErrInvalidARN) = %v, want %v", !a.wantBad, a.wantBad)
				}
				if !strings.Contains(err.Error(), a.arn) {
					t.Errorf("err %q does not name the ARN", err)
				}
				if s.Has(a.arn) {
					t.Error("Has = true")
				}
			})
		}
	}
}

func TestLoadRejectsTamperedKey(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t)
	s := openTestStore(t)
	c, _, err := s.Import(p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, _ := ParseARN(c.ARN)
	if err := os.WriteFile(filepath.Join(s.Dir(), id, keyFile), other.leaf.KeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(c.ARN)
	if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), c.ARN) {
		t.Errorf("Load of a tampered key: err = %v", err)
	}
}

func TestOpenSweepsStaleTemporaries(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * staleAfter)
	for _, name := range []string{".tmp-stale", ".deleted-stale", ".tmp-fresh"} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "stale") {
			if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != ".tmp-fresh" {
		t.Errorf("after Open: %v, want only .tmp-fresh (may be an import in progress)", entries)
	}
}

func TestDefaultDir(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory")
	}
	tests := []struct {
		name, store, xdg, want string
	}{
		{"explicit store", "/srv/certs", "/xdg", "/srv/certs"},
		{"XDG data home", "", "/xdg", "/xdg/l7lb/certificates"},
		{"home", "", "", filepath.Join(home, ".local/share/l7lb/certificates")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvStore, tt.store)
			t.Setenv("XDG_DATA_HOME", tt.xdg)
			if got := DefaultDir(); got != tt.want {
				t.Errorf("DefaultDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseARN(t *testing.T) {
	const id = "0b5c1f7e-52f0-4b8e-9c1a-3f3f2d7c9e10"
	tests := []struct {
		arn    string
		wantID string // "" means invalid
	}{
		{ARN(id), id},
		{"arn:aws:acm:region:account-id:certificate/certificate-id", ""},
		{ARNPrefix, ""},
		{ARNPrefix + id + "/x", ""},
		{ARNPrefix + "{" + id + "}", ""},
		{ARNPrefix + "urn:uuid:" + id, ""},
	}
	for _, tt := range tests {
		got, err := ParseARN(tt.arn)
		if (err == nil) != (tt.wantID != "") || got != tt.wantID {
			t.Errorf("ParseARN(%q) = %q, %v; want %q", tt.arn, got, err, tt.wantID)
		}
	}
}
