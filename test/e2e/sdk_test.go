package e2e

import (
	"math"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/l7lb/l7lb/internal/demo"
)

// TestGoSDKSeedFlow runs the demo's whole session through l7lb with the
// official Go SDK (TLS, server name), checks every answer against brute
// force, then sends 300 more RPCs on the same client connection and checks
// that each replica served a third of them, ±5 %.
func TestGoSDKSeedFlow(t *testing.T) {
	e := startEnv(t, envOptions{})
	ctx := ctxT(t, 2*time.Minute)
	c, err := demo.Connect(ctx, e.addr, serverName, e.ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rep, err := demo.Session{Collection: "seed", Rows: 1000, Dim: 32, TopK: 10, Queries: 10, Seed: 1}.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SearchHitsOK != 10 || rep.Inserted != 1000 || rep.CountStar != 1000 {
		t.Fatalf("report %+v", rep)
	}

	const rpcs = 300
	before := e.served()
	for i := 0; i < rpcs; i++ {
		if _, err := c.HasCollection(ctx, milvusclient.NewHasCollectionOption("seed")); err != nil {
			t.Fatalf("HasCollection %d: %v", i, err)
		}
	}
	after := e.served()
	total := int64(0)
	for i := range after {
		total += after[i] - before[i]
	}
	if total != rpcs {
		t.Fatalf("replicas served %d RPCs, want %d", total, rpcs)
	}
	for i := range after {
		share := float64(after[i]-before[i]) / float64(total)
		t.Logf("replica-%d: %d RPCs (%.1f%%)", i, after[i]-before[i], 100*share)
		if math.Abs(share-1.0/3) > 0.05 {
			t.Errorf("replica-%d served %.1f%% of %d RPCs, want 33.3%% ± 5%%", i, 100*share, rpcs)
		}
	}
}
