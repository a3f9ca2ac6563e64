package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// BenchmarkCollectionRouting measures what routing by collection costs
// per RPC: unary Search (the request the Go SDK builds) through l7lb over
// TLS to two clusters, with the same l7lb, connections and clusters, the
// route table only reloaded between sub-benchmarks:
//
//   - baseline: a dbname http-header rule to cluster two, then the
//     default rule to cluster one: routed on headers alone;
//   - collection-rule: a collection rule ("moved") to cluster two, then
//     the default rule: l7lb holds each request until its first message
//     has arrived and reads its collection_name.
//
// The search names collection "books" and goes to cluster one in both.
// Each runs serially (one RPC in flight: the latency added) and with 16
// in flight (throughput on the shared cores). The parent logs the ratio
// collection-rule/baseline of each pair, measured in the same run.
func BenchmarkCollectionRouting(b *testing.B) {
	docs := map[string]string{
		"baseline": routingIngress(`    alb.ingress.kubernetes.io/conditions.milvus-two: >
      [{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"dbname","values":["analytics"]}}]`,
			pathTo("/", "milvus-two"), pathTo("/", "milvus-demo")),
		"collection-rule": routingIngress(`    l7lb.io/conditions.milvus-two: >
      [{"field":"collection","collectionConfig":{"values":["moved"]}}]`,
			pathTo("/", "milvus-two"), pathTo("/", "milvus-demo")),
	}
	e := startTwoClusters(b, docs["baseline"])
	createLoaded(b, e.One, "", "books", 10)
	req, err := milvusclient.NewSearchOption("books", 3, []entity.Vector{entity.FloatVector{1, 1, 2, 3}}).WithANNSField("vector").Request()
	if err != nil {
		b.Fatal(err)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: e.LB.CA.Pool(), ServerName: serverName})
	cc, err := grpc.NewClient(e.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	cli := milvuspb.NewMilvusServiceClient(cc)

	// Rounds alternate the two tables, so that drift in the machine's
	// speed (two shared cores) falls on both alike; each
	// collection-rule run reports its ratio to the baseline run just
	// before it (x-baseline), and the parent logs the medians.
	const rounds = 3
	nsPerOp := map[string][]float64{}
	for _, inflight := range []int{1, 16} {
		for round := 1; round <= rounds; round++ {
			for _, name := range []string{"baseline", "collection-rule"} {
				key := name + "/inflight-" + strconv.Itoa(inflight)
				b.Run(fmt.Sprintf("%s/round-%d", key, round), func(b *testing.B) {
					e.Reload(b, docs[name])
					// One RPC outside the timer, on the new table.
					if _, err := cli.Search(ctxB(b, 10*time.Second), req); err != nil {
						b.Fatal(err)
					}
					before1, before2 := served(e.One), served(e.Two)
					b.ReportAllocs()
					b.ResetTimer()
					runSearches(b, cli, req, inflight)
					b.StopTimer()
					if d1, d2 := served(e.One)-before1, served(e.Two)-before2; d1 != int64(b.N) || d2 != 0 {
						b.Fatalf("cluster one served %d, cluster two %d searches; want %d and 0", d1, d2, b.N)
					}
					ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					if b.N > 1 { // the N=1 probe run is not a measurement
						nsPerOp[key] = append(nsPerOp[key], ns)
						if base := nsPerOp["baseline/inflight-"+strconv.Itoa(inflight)]; name != "baseline" && len(base) > 0 {
							b.ReportMetric(ns/base[len(base)-1], "x-baseline")
						}
					}
				})
			}
		}
	}
	for _, inflight := range []int{1, 16} {
		base, coll := median(nsPerOp["baseline/inflight-"+strconv.Itoa(inflight)]), median(nsPerOp["collection-rule/inflight-"+strconv.Itoa(inflight)])
		if base > 0 && coll > 0 {
			b.Logf("inflight %d, median of %d rounds: baseline %.0f ns/op, collection-rule %.0f ns/op, ratio collection/baseline %.3f (%+.0f ns per RPC)",
				inflight, rounds, base, coll, coll/base, coll-base)
		}
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// runSearches sends b.N searches, inflight at a time, and fails b on the
// first error.
func runSearches(b *testing.B, cli milvuspb.MilvusServiceClient, req *milvuspb.SearchRequest, inflight int) {
	work := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for g := 0; g < inflight; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				resp, err := cli.Search(ctx, req)
				if err == nil && resp.GetStatus().GetCode() != 0 {
					err = fmt.Errorf("search: %s", resp.GetStatus().GetReason())
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
