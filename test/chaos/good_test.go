package chaos

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
)

// The well-behaved clients: plain grpc-go clients calling the echo
// service (through the chaos group, so they share target connections
// with the misbehaving clients) and the official Milvus Go SDK searching
// (through the seed's group). Both are paced, so that their latency
// measures l7lb rather than their own queueing.
const (
	goodEchoClients = 4
	goodSDKClients  = 2
	echoInterval    = 5 * time.Millisecond
	sdkInterval     = 10 * time.Millisecond
	goodCallTimeout = 2 * time.Second
)

type goodCall struct {
	kind  string // "echo" or "sdk"
	start time.Time
	lat   time.Duration
	err   error
	trace string
}

type goodClients struct {
	e    *env
	echo []*grpc.ClientConn
	sdk  []*milvusclient.Client
}

func newGoodClients(ctx context.Context, e *env) (*goodClients, error) {
	g := &goodClients{e: e}
	creds := credentials.NewTLS(&tls.Config{RootCAs: e.pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	for i := 0; i < goodEchoClients; i++ {
		cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(creds), grpc.WithContextDialer(e.goodDialer))
		if err != nil {
			g.close()
			return nil, err
		}
		cc.Connect()
		g.echo = append(g.echo, cc)
	}
	for i := 0; i < goodSDKClients; i++ {
		c, err := demo.Connect(ctx, e.addr, serverName, e.pool, grpc.WithContextDialer(e.goodDialer))
		if err != nil {
			g.close()
			return nil, fmt.Errorf("SDK connect: %w", err)
		}
		g.sdk = append(g.sdk, c)
	}
	return g, nil
}

func (g *goodClients) close() {
	for _, cc := range g.echo {
		cc.Close()
	}
	for _, c := range g.sdk {
		c.Close(context.Background())
	}
}

// run keeps every client calling for d and returns every call.
func (g *goodClients) run(seed uint64, d time.Duration) []goodCall {
	var mu sync.Mutex
	var calls []goodCall
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	loop := func(i int, interval time.Duration, call func(ctx context.Context, rng *rand.Rand) (string, error), kind string) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		var mine []goodCall
		next := time.Now().Add(time.Duration(rng.Int64N(int64(interval))))
		for n := 0; n < 1_000_000; n++ {
			time.Sleep(time.Until(next))
			if time.Now().After(end) {
				break
			}
			trace, tp := newTrace(rng)
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "traceparent", tp), goodCallTimeout)
			start := time.Now()
			_, err := call(ctx, rng)
			lat := time.Since(start)
			cancel()
			mine = append(mine, goodCall{kind: kind, start: start, lat: lat, err: err, trace: trace})
			next = next.Add(interval)
			if now := time.Now(); next.Before(now) {
				next = now // late: no catch-up burst
			}
		}
		mu.Lock()
		calls = append(calls, mine...)
		mu.Unlock()
	}
	for i, cc := range g.echo {
		ec := echo.NewClient(cc)
		wg.Add(1)
		go loop(i, echoInterval, func(ctx context.Context, rng *rand.Rand) (string, error) {
			return "", echoCall(ctx, ec, rng)
		}, "echo")
	}
	for i, c := range g.sdk {
		wg.Add(1)
		go loop(100+i, sdkInterval, func(ctx context.Context, rng *rand.Rand) (string, error) {
			rs, err := c.Search(ctx, milvusclient.NewSearchOption(collection, 5, []entity.Vector{entity.FloatVector(vector(rng))}))
			if err == nil && (len(rs) != 1 || rs[0].ResultCount != 5) {
				err = fmt.Errorf("search: %d result sets, want 1 with 5 hits", len(rs))
			}
			return "", err
		}, "sdk")
	}
	wg.Wait()
	return calls
}

// echoCall is one well-behaved echo RPC: mostly a small unary call, at
// times a server stream of two 32 KiB messages; the answer is checked.
func echoCall(ctx context.Context, ec *echo.Client, rng *rand.Rand) error {
	if rng.IntN(5) == 0 {
		out, err := ec.ServerStream(ctx, 2, 32<<10)
		if err != nil {
			return err
		}
		if len(out) != 2 || len(out[0]) != 32<<10 || len(out[1]) != 32<<10 {
			return fmt.Errorf("server stream: got %d messages, want 2 of 32 KiB", len(out))
		}
		return nil
	}
	p := make([]byte, 64+rng.IntN(4096))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	got, err := ec.Unary(ctx, p)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, p) {
		return fmt.Errorf("unary: echo of %d bytes came back as %d different bytes", len(p), len(got))
	}
	return nil
}

// ---- statistics ----

type latStats struct {
	n        int
	p50, p99 time.Duration
	max      time.Duration
}

func stats(calls []goodCall, keep func(goodCall) bool) latStats {
	var lats []time.Duration
	for _, c := range calls {
		if c.err == nil && keep(c) {
			lats = append(lats, c.lat)
		}
	}
	if len(lats) == 0 {
		return latStats{}
	}
	slices.Sort(lats)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(lats))+0.5) - 1
		return lats[min(max(i, 0), len(lats)-1)]
	}
	return latStats{n: len(lats), p50: q(0.50), p99: q(0.99), max: lats[len(lats)-1]}
}

func (s latStats) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", s.n, s.p50.Round(100*time.Microsecond), s.p99.Round(100*time.Microsecond), s.max.Round(100*time.Microsecond))
}

// p99Limit is what a round's p99 may reach: twice the baseline's, but
// never less than the baseline plus 50 ms. The floor is there because
// the baseline p99 on loopback is a few milliseconds, and on a 2-core
// machine where this one process runs l7lb, the backends and the
// misbehaving clients (TLS handshakes, tens of MiB of replies read and
// collected) one descheduled goroutine or GC cycle costs 10-40 ms (seen:
// 32 ms in a round of zero-window and slow readers whose traffic shares
// no target connection with the measured clients). A frozen or starved
// path shows as seconds, far beyond it; what the floor gives up is
// the literal 2x, which this machine cannot measure.
func p99Limit(base time.Duration) time.Duration {
	return max(2*base, base+50*time.Millisecond)
}

// errorSummary groups errors by message (first 120 characters).
func errorSummary(errs []goodCall, max int) string {
	counts := map[string]int{}
	for _, c := range errs {
		msg := c.err.Error()
		if s, ok := status.FromError(c.err); ok {
			msg = s.Code().String() + ": " + s.Message()
		}
		if len(msg) > 120 {
			msg = msg[:120] + "..."
		}
		counts[c.kind+" "+msg]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	var parts []string
	for i, k := range keys {
		if i == max {
			parts = append(parts, fmt.Sprintf("... %d more kinds", len(keys)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%dx %s", counts[k], k))
	}
	return strings.Join(parts, "; ")
}
