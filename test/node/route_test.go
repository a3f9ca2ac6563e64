package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/lbtest"
)

// TestNodeSDKRouting runs the Node SDK through l7lb in front of two
// clusters, with one route table that sends database "analytics" (the
// dbname metadata the SDK sends, from its `database` option) and
// collection "moved" (l7lb's collection condition, on a forward action)
// to cluster two, and everything else to cluster one. route.mjs makes
// seven kinds of calls per round; each collection exists on one cluster
// only, so a misrouted call fails the script, and the clusters' counters
// show where the calls went.
func TestNodeSDKRouting(t *testing.T) {
	node := requireNodeSDK(t)
	doc := lbtest.RoutingIngress(`    alb.ingress.kubernetes.io/conditions.milvus-two: >
      [{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"dbname","values":["analytics"]}}]
    alb.ingress.kubernetes.io/actions.moved-collection: >
      {"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"milvus-two","servicePort":19530}]}}
    l7lb.io/conditions.moved-collection: >
      [{"field":"collection","collectionConfig":{"values":["moved"]}}]`,
		lbtest.Path("/", "milvus-two"), lbtest.Path("/", "moved-collection"), lbtest.Path("/", "milvus-demo"))
	e := lbtest.StartTwoClusters(t, doc)
	lbtest.CreateLoaded(t, e.One, "", "books", 10)
	lbtest.CreateLoaded(t, e.Two, "", "moved", 10)
	lbtest.CreateLoaded(t, e.Two, "analytics", "events", 10)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, e.LB.CA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}

	const rounds = 30
	for _, tc := range []struct {
		name, db, collection string
		want                 string // the cluster every collection call must reach
	}{
		{"database analytics", "analytics", "events", lbtest.ClusterTwo},
		{"collection moved", "", "moved", lbtest.ClusterTwo},
		{"collection books", "", "books", lbtest.ClusterOne},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one, two := lbtest.Served(e.One), lbtest.Served(e.Two)
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "route.mjs")
			cmd.Env = append(withoutProxy(os.Environ()),
				"L7LB_ADDR="+e.Addr, "L7LB_CA_FILE="+caFile, "L7LB_SERVER_NAME="+lbtest.ServerName,
				"L7LB_DATABASE="+tc.db, "L7LB_COLLECTION="+tc.collection,
				"L7LB_DIM="+strconv.Itoa(lbtest.SeedDim), "L7LB_ROUNDS="+strconv.Itoa(rounds))
			cmd.WaitDelay = 5 * time.Second
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("node route.mjs: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			var rep struct {
				OK    bool           `json:"ok"`
				Calls map[string]int `json:"calls"`
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil || !rep.OK {
				t.Fatalf("route.mjs report %q: %v", stdout.String(), err)
			}
			dOne, dTwo := lbtest.Served(e.One)-one, lbtest.Served(e.Two)-two
			named := 0 // calls that name the collection
			for m, n := range rep.Calls {
				if m != "showCollections" {
					named += n
				}
			}
			t.Logf("Node SDK, %s: calls %v; cluster one served %d, cluster two %d", tc.name, rep.Calls, dOne, dTwo)
			if named != 6*rounds || rep.Calls["showCollections"] != rounds {
				t.Fatalf("route.mjs made %v, want %d rounds of each call", rep.Calls, rounds)
			}
			switch {
			case tc.db != "": // every call carries dbname analytics
				if dOne != 0 || dTwo < int64(7*rounds) {
					t.Errorf("cluster one served %d, cluster two %d; want 0 and at least %d", dOne, dTwo, 7*rounds)
				}
			case tc.want == lbtest.ClusterTwo: // collection calls on two, the rest on one
				if dTwo < int64(named) || dOne < int64(rounds) {
					t.Errorf("cluster one served %d, cluster two %d; want at least %d and %d", dOne, dTwo, rounds, named)
				}
			default:
				if dTwo != 0 || dOne < int64(7*rounds) {
					t.Errorf("cluster one served %d, cluster two %d; want at least %d and 0", dOne, dTwo, 7*rounds)
				}
			}
		})
	}
}
