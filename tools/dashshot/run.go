package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
	"github.com/l7lb/l7lb/internal/promql"
)

// maxConns is l7lb's --max-conns: small, so that a burst of idle
// connections is rejected and the panel for it has something to show.
const maxConns = 24

// Health checks every 2 s, threshold 2: target states change in seconds.
const fastHealth = `    alb.ingress.kubernetes.io/healthcheck-interval-seconds: "2"
    alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "1"
    alb.ingress.kubernetes.io/healthy-threshold-count: "2"
    alb.ingress.kubernetes.io/unhealthy-threshold-count: "2"`

// live is a running `l7lb serve` in front of a fakemilvus cluster.
type live struct {
	cluster *fakemilvus.Cluster
	ca      *pki.CA
	addr    string // the HTTPS listener
	admin   string
	cmd     *exec.Cmd
	logs    lbtest.Buffer // l7lb's stderr
}

// every calls f every d until ctx ends, with a count of the calls.
func every(ctx context.Context, d time.Duration, f func(i int)) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		f(i)
	}
}

// startLive starts three fakemilvus replicas with different latencies and
// l7lb serving the seed's Ingress in front of them, and waits (30 s at
// most) until l7lb is ready.
func startLive(ctx context.Context, binary, dir string) (*live, error) {
	cl, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3})
	if err != nil {
		return nil, err
	}
	for i, r := range cl.Replicas() {
		r.SetLatency(time.Duration(1+3*i) * time.Millisecond)
	}
	l := &live{cluster: cl}
	ca, err := pki.NewCA("l7lb dashboard CA", time.Hour)
	if err != nil {
		return nil, err
	}
	l.ca = ca
	// 20 days left: the certificate expiry table has a value to colour.
	leaf, err := ca.Issue([]string{lbtest.ServerName}, nil, 20*24*time.Hour)
	if err != nil {
		return nil, err
	}
	storeDir := filepath.Join(dir, "store")
	store, err := certstore.Open(storeDir)
	if err != nil {
		return nil, err
	}
	c, _, err := store.Import(leaf.CertPEM(), ca.CertPEM(), leaf.KeyPEM(), time.Now())
	if err != nil {
		return nil, err
	}
	ing := strings.ReplaceAll(lbtest.Ingress(`[{"HTTPS":443}]`, fastHealth), lbtest.Placeholder, c.ARN)
	ingFile := filepath.Join(dir, "ingress.yaml")
	if err := os.WriteFile(ingFile, []byte(ing), 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.admin = ln.Addr().String()
	ln.Close()
	addrFile := filepath.Join(dir, "addrs.json")
	l.cmd = exec.CommandContext(ctx, binary, "serve", "-f", ingFile, "--store", storeDir,
		"--endpoints", lbtest.Service+"="+strings.Join(cl.Addrs(), ","),
		"--listen", "443=127.0.0.1:0", "--addr-file", addrFile, "--admin", l.admin,
		"--max-conns", fmt.Sprint(maxConns), "--drain-timeout", "2s")
	l.cmd.Stderr = &l.logs
	l.cmd.WaitDelay = 5 * time.Second
	if err := l.cmd.Start(); err != nil {
		cl.Close()
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(addrFile); err == nil {
			var addrs map[string]string
			if json.Unmarshal(b, &addrs) == nil && addrs["443"] != "" {
				if resp, err := http.Get("http://" + l.admin + "/readyz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						l.addr = addrs["443"]
						return l, nil
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // polling a file another process writes
	}
	l.stop()
	return nil, fmt.Errorf("l7lb not ready within 30 s:\n%s", l.logs.String())
}

func (l *live) stop() {
	if l.cmd != nil && l.cmd.Process != nil {
		l.cmd.Process.Signal(os.Interrupt) //nolint:errcheck // may have exited
		l.cmd.Wait()                       //nolint:errcheck // stopped on purpose
	}
	l.cluster.Close()
}

// traffic runs until ctx ends: steady Milvus RPCs from three clients,
// Go SDK sessions (create, insert, index, load, search, query), an
// unknown method now and then (an error status), plaintext on the TLS port
// (failed handshakes), and, at fractions of d, the events the panels
// count: a replica not ready (retries, an ejection), connections over
// --max-conns, and every replica not ready (fail-open).
func (l *live) traffic(ctx context.Context, d time.Duration) error {
	creds := credentials.NewTLS(&tls.Config{RootCAs: l.ca.Pool(), ServerName: lbtest.ServerName})
	var wg sync.WaitGroup
	defer wg.Wait()
	for w := range 3 {
		cc, err := grpc.NewClient(l.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer cc.Close()
		mc := milvuspb.NewMilvusServiceClient(cc)
		wg.Go(func() {
			every(ctx, time.Duration(8+4*w)*time.Millisecond, func(i int) {
				// Errors are expected while replicas are not ready; the
				// metrics are what counts.
				switch i % 3 {
				case 0:
					mc.ShowCollections(ctx, &milvuspb.ShowCollectionsRequest{}) //nolint:errcheck
				case 1:
					mc.GetVersion(ctx, &milvuspb.GetVersionRequest{}) //nolint:errcheck
				default:
					mc.CheckHealth(ctx, &milvuspb.CheckHealthRequest{}) //nolint:errcheck
				}
				if w == 0 && i%50 == 0 {
					cc.Invoke(ctx, "/milvus.proto.milvus.MilvusService/NoSuchMethod", &milvuspb.GetVersionRequest{}, &milvuspb.GetVersionResponse{}) //nolint:errcheck
				}
			})
		})
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			cli, err := demo.Connect(ctx, l.addr, lbtest.ServerName, l.ca.Pool())
			if err != nil {
				// Refused while connections are over --max-conns: try
				// again a little later, not in a spin.
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			s := demo.Session{Collection: fmt.Sprintf("dash_%d", i), Rows: 300, Dim: 16, TopK: 5, Queries: 20, Seed: uint64(i)}
			s.Run(ctx, cli) //nolint:errcheck // fails during the not-ready phases, as expected
			cli.Close(context.Background())
		}
	})
	wg.Go(func() {
		every(ctx, 2*time.Second, func(int) {
			if c, err := net.DialTimeout("tcp", l.addr, time.Second); err == nil {
				c.SetDeadline(time.Now().Add(2 * time.Second))         //nolint:errcheck
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") //nolint:errcheck
				io.Copy(io.Discard, c)                                 //nolint:errcheck // until l7lb closes it
				c.Close()
			}
		})
	})
	rs := l.cluster.Replicas()
	phase := func(frac float64, what func()) {
		wg.Go(func() {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(frac * float64(d))):
				what()
			}
		})
	}
	var idle []net.Conn
	var idleMu sync.Mutex
	phase(0.30, func() { rs[0].SetNotReady(true) })
	phase(0.50, func() { rs[0].SetNotReady(false) })
	phase(0.58, func() {
		idleMu.Lock()
		defer idleMu.Unlock()
		for range maxConns + 8 {
			if c, err := net.DialTimeout("tcp", l.addr, time.Second); err == nil {
				idle = append(idle, c)
			}
		}
	})
	phase(0.66, func() {
		idleMu.Lock()
		defer idleMu.Unlock()
		for _, c := range idle {
			c.Close()
		}
		idle = nil
	})
	phase(0.74, func() {
		for _, r := range rs {
			r.SetNotReady(true)
		}
	})
	phase(0.84, func() {
		for _, r := range rs {
			r.SetNotReady(false)
		}
	})
	<-ctx.Done()
	idleMu.Lock()
	for _, c := range idle {
		c.Close()
	}
	idleMu.Unlock()
	return nil
}

// scrape reads /metrics once into store, with the labels Prometheus adds
// (job, instance), histograms expanded into _bucket, _sum and _count.
func (l *live) scrape(store *promql.Store, at time.Time) error {
	resp, err := http.Get("http://" + l.admin + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return fmt.Errorf("/metrics: %w", err)
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			base := promql.Labels{"job": "l7lb", "instance": l.admin}
			for _, lp := range m.GetLabel() {
				base[lp.GetName()] = lp.GetValue()
			}
			with := func(metric string, extra ...string) promql.Labels {
				out := promql.Labels{"__name__": metric}
				for k, v := range base {
					out[k] = v
				}
				for i := 0; i+1 < len(extra); i += 2 {
					out[extra[i]] = extra[i+1]
				}
				return out
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				store.Add(with(name), at, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				store.Add(with(name), at, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				store.Add(with(name), at, m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					store.Add(with(name+"_bucket", "le", fmt.Sprint(b.GetUpperBound())), at, float64(b.GetCumulativeCount()))
				}
				store.Add(with(name+"_bucket", "le", "+Inf"), at, float64(h.GetSampleCount()))
				store.Add(with(name+"_sum"), at, h.GetSampleSum())
				store.Add(with(name+"_count"), at, float64(h.GetSampleCount()))
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					store.Add(with(name, "quantile", fmt.Sprint(q.GetQuantile())), at, q.GetValue())
				}
				store.Add(with(name+"_sum"), at, s.GetSampleSum())
				store.Add(with(name+"_count"), at, float64(s.GetSampleCount()))
			}
		}
	}
	return nil
}

// record scrapes every interval while the traffic runs for d; it returns
// the scrape times.
func (l *live) record(ctx context.Context, store *promql.Store, d, interval time.Duration) ([]time.Time, error) {
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- l.traffic(tctx, d) }()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var times []time.Time
	var scrapeErr error
	for done := false; !done; {
		now := time.Now()
		if err := l.scrape(store, now); err != nil {
			scrapeErr = errors.Join(scrapeErr, err)
		} else {
			times = append(times, now)
		}
		select {
		case <-tctx.Done():
			done = true
		case <-tick.C:
		}
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	if len(times) < 3 {
		return nil, fmt.Errorf("only %d scrapes succeeded: %v", len(times), scrapeErr)
	}
	return times, nil
}
