package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/pki"
)

// TestReloadKeepsServing runs serve as a process, then breaks its file
// (refused, the old configuration keeps serving), fixes it with a new
// endpoint list (applied), and sends SIGHUP: the listener stays, RPCs keep
// working throughout, and SIGTERM ends it with exit 0.
func TestReloadKeepsServing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ca, _ := pki.NewCA("reload root", time.Hour)
	leaf, _ := ca.Issue([]string{demo.ServerName}, nil, time.Hour)
	dir := t.TempDir()
	leaf.WriteFiles(dir)
	store := filepath.Join(dir, "store")
	out, err := l7lb(ctx, "cert", "import", "--store", store, "--certificate", filepath.Join(dir, "Certificate.pem"),
		"--certificate-chain", filepath.Join(dir, "CertificateChain.pem"), "--private-key", filepath.Join(dir, "PrivateKey.pem")).Output()
	if err != nil {
		t.Fatal(err)
	}
	arn := strings.Split(string(out), `"`)[3]
	addrs := cluster.Addrs()
	ing := bytes.Replace(demo.SeedIngress, []byte(demo.SeedARN), []byte(arn), 1)
	ingFile := filepath.Join(dir, "ingress.yaml")
	os.WriteFile(ingFile, ing, 0o644)
	addrFile := filepath.Join(dir, "addrs.json")
	var stderr syncBuffer
	serve := l7lb(ctx, "serve", "-f", ingFile, "--store", store, "--admin", "off",
		"--endpoints", "milvus/milvus-demo="+strings.Join(addrs, ","),
		"--listen", "443=127.0.0.1:0", "--addr-file", addrFile, "--drain-timeout", "5s")
	serve.Stderr = &stderr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	addr := waitAddr(t, addrFile, "443", &stderr)
	c, err := demo.Connect(ctx, addr, demo.ServerName, ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	call := func(what string) {
		t.Helper()
		for i := 0; i < 10; i++ {
			if _, err := c.ListCollections(ctx, milvusclient.NewListCollectionOption()); err != nil {
				t.Fatalf("%s: %v\n%s", what, err, stderr.String())
			}
		}
	}
	call("before")

	// A broken file: refused, logged, the old configuration serves on.
	os.WriteFile(ingFile, []byte("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: [broken\n"), 0o644)
	waitLog(t, &stderr, "configuration refused; still serving the previous one")
	call("after the broken file")

	// Fixed again, and SIGHUP: reloaded on the same listener.
	os.WriteFile(ingFile, ing, 0o644)
	waitLog(t, &stderr, "configuration reloaded")
	serve.Process.Signal(syscall.SIGHUP)
	waitLogCount(t, &stderr, "configuration reloaded", 2)
	call("after reloads")

	serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
	}
}

func waitLog(t *testing.T, b *syncBuffer, s string) { t.Helper(); waitLogCount(t, b, s, 1) }

func waitLogCount(t *testing.T, b *syncBuffer, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(b.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q %d times:\n%s", s, n, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
