package lbtest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
)

// ProcOptions say how to run `l7lb serve` as its own process.
type ProcOptions struct {
	// Binary is the l7lb command (RunWithL7LB builds it).
	Binary string
	// Targets are the Service's endpoints ("host:port"), usually a
	// fakemilvus cluster's Addrs().
	Targets []string
	// Annotations are added to the seed's Ingress (lines indented four
	// spaces), e.g. faster health checks.
	Annotations string
	// Args are more flags for `l7lb serve`.
	Args []string
	// CAName names the private CA ("lbtest CA" if empty).
	CAName string
}

// Proc is a running `l7lb serve`.
type Proc struct {
	Addr  string // the HTTPS listener of port 443
	Admin string // the admin listener (host:port): /metrics, /readyz
	CA    *pki.CA
	Logs  *Buffer // l7lb's stderr
	cmd   *exec.Cmd
}

// StartProcess serves the seed's Ingress (host ServerName, certificate
// from a new store) with o.Targets as the Service's endpoints, waits until
// l7lb is ready and stops it (SIGINT) when the test ends.
func StartProcess(t testing.TB, o ProcOptions) *Proc {
	t.Helper()
	name := o.CAName
	if name == "" {
		name = "lbtest CA"
	}
	cs := NewCerts(t, name)
	dir := t.TempDir()
	ingFile := filepath.Join(dir, "ingress.yaml")
	doc := strings.ReplaceAll(Ingress(`[{"HTTPS":443}]`, strings.TrimRight(o.Annotations, "\n")), Placeholder, cs.ARN)
	if err := os.WriteFile(ingFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	addrFile := filepath.Join(dir, "addrs.json")
	args := append([]string{"serve", "-f", ingFile, "--store", cs.Dir,
		"--endpoints", Service + "=" + strings.Join(o.Targets, ","),
		"--listen", "443=127.0.0.1:0", "--addr-file", addrFile, "--admin", admin, "--drain-timeout", "2s"}, o.Args...)
	p := &Proc{Admin: admin, CA: cs.CA, Logs: &Buffer{}}
	p.cmd = exec.Command(o.Binary, args...)
	p.cmd.Stderr = p.Logs
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt) //nolint:errcheck // it may have exited
		p.cmd.Wait()                       //nolint:errcheck // stopped on purpose
		if t.Failed() {
			t.Logf("l7lb's log:\n%s", p.Logs.String())
		}
	})
	p.Addr = p.waitReady(t, addrFile)
	return p
}

// waitReady polls the address file and /readyz (bounded: 30 s).
func (p *Proc) waitReady(t testing.TB, addrFile string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			var addrs map[string]string
			if json.Unmarshal(b, &addrs) == nil && addrs["443"] != "" {
				if resp, err := http.Get("http://" + p.Admin + "/readyz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return addrs["443"]
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("l7lb did not become ready within 30s:\n%s", p.Logs.String())
		case <-tick.C:
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
