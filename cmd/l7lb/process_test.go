package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
)

// binary is l7lb built once for the tests that run it as its own process.
var binary string

func TestMain(m *testing.M) { os.Exit(lbtest.RunWithL7LB(m, &binary)) }

func l7lb(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// TestSeedStepsAsProcesses follows the seed with the real binary: import
// the certificate (fileb:// paths, as the seed writes them), serve the
// seed's ingress.yaml with that ARN, connect the Milvus Go SDK with TLS and
// the server name, then SIGTERM: l7lb drains and exits 0.
func TestSeedStepsAsProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster := startCluster(t)
	// Step 2: aws acm import-certificate, locally.
	seed := importSeedCertificate(t, ctx)

	// Step 3: the seed's ingress.yaml with the ARN replaced, as the seed
	// tells its reader to do.
	serve := startSeedServe(t, ctx, cluster, seed)

	// Step 4: connect as pymilvus's secure=True, server_name=... does.
	c, err := demo.Connect(ctx, serve.addr, demo.ServerName, seed.ca.Pool())
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, serve.stderr.String())
	}
	for i := 0; i < 30; i++ {
		if _, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(ctx)
	for _, r := range cluster.Replicas() {
		if r.Served() < 5 {
			t.Errorf("%s served %d RPCs; want a share of 30+", r.Name(), r.Served())
		}
	}
	log := serve.stderr.String()
	for _, want := range []string{"listening on 127.0.0.1:", "HTTPS port 443", "default certificate " + seed.arn + " for milvus-demo.milvus.io", "target group milvus/milvus-demo:19530: 3 targets"} {
		if !strings.Contains(log, want) {
			t.Errorf("start-up lines lack %q:\n%s", want, log)
		}
	}

	serve.terminate(t)
}

// seedServe is `l7lb serve` run as a process on the seed's ingress.yaml,
// with the imported certificate's ARN, in front of a test cluster.
type seedServe struct {
	cmd     *exec.Cmd
	stderr  *lbtest.Buffer
	addr    string // the HTTPS listener, on a free loopback port
	ingress []byte // the ingress.yaml served, as written to ingressFile
}

// ingressFile is the name of the served ingress.yaml in the seed's dir.
const ingressFile = "ingress.yaml"

// startSeedServe starts serve with extraArgs after the usual flags and
// waits until it listens; the process is killed when the test ends.
func startSeedServe(t *testing.T, ctx context.Context, cluster *fakemilvus.Cluster, seed seedCertificate, extraArgs ...string) *seedServe {
	t.Helper()
	ing := bytes.Replace(demo.SeedIngress, []byte(demo.SeedARN), []byte(seed.arn), 1)
	ingFile := writeFile(t, seed.dir, ingressFile, ing)
	addrFile := filepath.Join(seed.dir, "addrs.json")
	args := append([]string{"serve", "-f", ingFile, "--store", seed.store,
		"--endpoints", "milvus/milvus-demo=" + strings.Join(cluster.Addrs(), ","),
		"--listen", "443=127.0.0.1:0", "--addr-file", addrFile, "--drain-timeout", "5s"}, extraArgs...)
	s := &seedServe{cmd: l7lb(ctx, args...), stderr: new(lbtest.Buffer), ingress: ing}
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill() })
	s.addr = waitAddr(t, addrFile, "443", s.stderr)
	return s
}

// terminate sends SIGTERM and wants serve to drain and exit 0.
func (s *seedServe) terminate(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, s.stderr.String())
	}
}

func waitAddr(t *testing.T, file, port string, stderr fmt.Stringer) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(file); err == nil {
			var m map[string]string
			if json.Unmarshal(b, &m) == nil && m[port] != "" {
				return m[port]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("l7lb did not start:\n%s", stderr.String())
	return ""
}

// TestServeRefusesBadConfig: a bad file stops serve before it listens, with
// the problem named.
func TestServeRefusesBadConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	bad := bytes.Replace(demo.SeedIngress, []byte(`'[{"HTTPS":443}]'`), []byte(`'[{"HTTPS":"443"}]'`), 1)
	f := writeFile(t, dir, "ingress.yaml", bad)
	out, err := l7lb(ctx, "serve", "-f", f, "--store", filepath.Join(dir, "store"), "--listen", "443=127.0.0.1:0").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`ingress\.yaml:\d+: Ingress milvus/milvus-demo: annotation alb\.ingress\.kubernetes\.io/listen-ports`).Match(out) {
		t.Fatalf("error does not name file, line, object and annotation:\n%s", out)
	}
}

// TestValidate runs `l7lb validate` on good and bad files.
func TestValidate(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	write := func(name string, b []byte) string { return writeFile(t, dir, name, b) }
	seed := write("seed.yaml", demo.SeedIngress)
	withUnknown := write("unknown.yaml", bytes.Replace(demo.SeedIngress, []byte("    alb.ingress.kubernetes.io/scheme"),
		[]byte("    alb.ingress.kubernetes.io/wafv2-acl-arn: arn:aws:wafv2:us-west-2:000000000000:regional/webacl/milvus/0\n    alb.ingress.kubernetes.io/scheme"), 1))
	badVersion := write("bad.yaml", bytes.Replace(demo.SeedIngress, []byte("backend-protocol-version: GRPC"), []byte("backend-protocol-version: GRPC2"), 1))
	tests := []struct {
		name     string
		args     []string
		exit     int
		contains []string
	}{
		{"seed with an unknown ARN", []string{"-f", seed}, 1, []string{"seed.yaml", "arn:aws:acm:region:account-id:certificate/certificate-id"}},
		{"seed, ARN not checked against a store", []string{"-f", seed, "--endpoints", "milvus/milvus-demo=127.0.0.1:19530", "--store", ""}, 1, []string{"certificate-id"}},
		{"bad backend-protocol-version", []string{"-f", badVersion}, 1, []string{"bad.yaml:", "Ingress milvus/milvus-demo", "backend-protocol-version", "GRPC2"}},
		{"annotation not yet honoured is named", []string{"-f", withUnknown}, 1, []string{"warning:", "alb.ingress.kubernetes.io/wafv2-acl-arn"}},
		{"missing file", []string{"-f", filepath.Join(dir, "nope.yaml")}, 1, []string{"nope.yaml"}},
		{"no file", nil, 1, []string{"-f FILE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"validate"}, tc.args...)
			if !contains(tc.args, "--store") {
				args = append(args, "--store", store)
			}
			expectRun(t, ctx, args, tc.exit, tc.contains)
		})
	}
}

// expectRun runs l7lb with args and checks its exit code and that its
// output holds every string of contains; it returns the output.
func expectRun(t *testing.T, ctx context.Context, args []string, exit int, contains []string) []byte {
	t.Helper()
	out, err := l7lb(ctx, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != exit {
		t.Errorf("exit %d, want %d\n%s", code, exit, out)
	}
	for _, want := range contains {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestExampleIsTheSeed keeps examples/ingress.yaml and the demo's embedded
// copy byte-identical: the seed's file, unchanged.
func TestExampleIsTheSeed(t *testing.T) {
	b, err := os.ReadFile("../../examples/ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, demo.SeedIngress) {
		t.Fatal("examples/ingress.yaml differs from internal/demo/ingress.yaml")
	}
}

func startCluster(t *testing.T) *fakemilvus.Cluster {
	t.Helper()
	cluster, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}

// seedCertificate is the seed's step 2 done with the real binary: a
// certificate for milvus-demo.milvus.io imported into a store by
// `l7lb cert import` with fileb:// paths, as the seed writes them.
type seedCertificate struct {
	dir, store, arn string
	ca              *pki.CA
}

func importSeedCertificate(t *testing.T, ctx context.Context) seedCertificate {
	t.Helper()
	ca, err := pki.NewCA("seed root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{demo.ServerName}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := leaf.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	out, err := l7lb(ctx, "cert", "import", "--store", store,
		"--certificate", "fileb://"+filepath.Join(dir, "Certificate.pem"),
		"--certificate-chain", "fileb://"+filepath.Join(dir, "CertificateChain.pem"),
		"--private-key", "fileb://"+filepath.Join(dir, "PrivateKey.pem")).Output()
	if err != nil {
		t.Fatalf("cert import: %v", err)
	}
	var imported struct{ CertificateArn string }
	if err := json.Unmarshal(out, &imported); err != nil || !strings.HasPrefix(imported.CertificateArn, "arn:l7lb:acm:local:000000000000:certificate/") {
		t.Fatalf("cert import printed %q (%v)", out, err)
	}
	return seedCertificate{dir: dir, store: store, arn: imported.CertificateArn, ca: ca}
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
