package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/lbtest"
)

// TestReloadKeepsServing runs serve as a process, then breaks its file
// (refused, the old configuration keeps serving), restores it (reloaded),
// and sends SIGHUP (reloaded again): the listener stays, RPCs keep working
// throughout, and SIGTERM ends it with exit 0.
func TestReloadKeepsServing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster := startCluster(t)
	seed := importSeedCertificate(t, ctx)
	serve := startSeedServe(t, ctx, cluster, seed, "--admin", "off")
	stderr := serve.stderr
	c, err := demo.Connect(ctx, serve.addr, demo.ServerName, seed.ca.Pool())
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
	writeFile(t, seed.dir, ingressFile, []byte("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: [broken\n"))
	waitLog(t, stderr, "configuration refused; still serving the previous one")
	call("after the broken file")

	// Fixed again, and SIGHUP: reloaded on the same listener.
	writeFile(t, seed.dir, ingressFile, serve.ingress)
	waitLog(t, stderr, "configuration reloaded")
	serve.cmd.Process.Signal(syscall.SIGHUP)
	waitLogCount(t, stderr, "configuration reloaded", 2)
	call("after reloads")

	serve.terminate(t)
}

func waitLog(t *testing.T, b *lbtest.Buffer, s string) { t.Helper(); waitLogCount(t, b, s, 1) }

func waitLogCount(t *testing.T, b *lbtest.Buffer, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(b.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q %d times:\n%s", s, n, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
