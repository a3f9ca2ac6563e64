package chaos

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/index"
	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/ingress"
	"github.com/l7lb/l7lb/internal/config/manifest"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/observe"
	"github.com/l7lb/l7lb/internal/runtime"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

const serverName = lbtest.ServerName

// Two routes: the echo service goes to the chaos group (the three
// fakemilvus replicas and the raw target, where target faults happen),
// everything else (the Milvus SDK) to the seed's group of the replicas
// only. Health checks are quick so that a faulty raw target leaves and
// comes back within a few seconds.
const echoService = "milvus/chaos-echo"

// heldService is the replicas again, behind a collection rule placed
// before the seed's catch-all: every Milvus RPC that names a collection
// is held until l7lb read its first message (l7lb.io/conditions), so the
// SDK traffic and the adversarial clients go through the hold path; the
// SDK's collection ("chaos") matches, so its reads and writes go here
// after the hold; what names no collection falls through to milvus-demo.
const heldService = "milvus/milvus-held"

const ingressDoc = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  namespace: milvus
  name: milvus-demo
  annotations:
    alb.ingress.kubernetes.io/backend-protocol-version: GRPC
    alb.ingress.kubernetes.io/target-type: ip
    alb.ingress.kubernetes.io/listen-ports: '[{"HTTPS":443}]'
    alb.ingress.kubernetes.io/certificate-arn: "` + lbtest.Placeholder + `"
    alb.ingress.kubernetes.io/scheme: internet-facing
    alb.ingress.kubernetes.io/healthcheck-interval-seconds: "2"
    alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "1"
    alb.ingress.kubernetes.io/healthy-threshold-count: "2"
    alb.ingress.kubernetes.io/unhealthy-threshold-count: "2"
    alb.ingress.kubernetes.io/target-group-attributes: deregistration_delay.timeout_seconds=10
    l7lb.io/conditions.milvus-held: '[{"field":"collection","collectionConfig":{"values":["chaos"]}}]'
spec:
  ingressClassName: alb
  rules:
    - host: ` + lbtest.ServerName + `
      http:
        paths:
        - path: /l7lb.test.Echo
          pathType: Prefix
          backend:
            service:
              name: chaos-echo
              port:
                number: 19530
        - path: /
          pathType: Prefix
          backend:
            service:
              name: milvus-held
              port:
                number: 19530
        - path: /
          pathType: Prefix
          backend:
            service:
              name: milvus-demo
              port:
                number: 19530
`

// env is one l7lb with its backends, shared by all rounds of a run (so
// that whatever a round leaks is still there for the next one to see,
// as in production).
type env struct {
	t       testing.TB
	lb      *lbtest.LB
	rt      *runtime.Runtime
	addr    string
	pool    *x509.CertPool
	cluster *fakemilvus.Cluster
	obs     *observer
	logs    *lbtest.Buffer

	mu      sync.Mutex
	raw     *rawTarget   // the raw target in the chaos group now
	oldRaws []*rawTarget // replaced ones (kept running while they drain)
	good    map[string]bool
}

func newEnv(t testing.TB) *env {
	t.Helper()
	cl, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3, StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	raw, err := startRawTarget()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cluster: cl, raw: raw, obs: newObserver(), good: map[string]bool{}, logs: &lbtest.Buffer{}}
	t.Cleanup(func() {
		e.mu.Lock()
		raws := append([]*rawTarget{e.raw}, e.oldRaws...)
		e.mu.Unlock()
		for _, r := range raws {
			r.close()
		}
	})
	e.lb = lbtest.Start(t, lbtest.Options{
		Ingress:   ingressDoc,
		Endpoints: e.endpoints(raw),
		CAName:    "chaos CA",
		Runtime: runtime.Options{
			Observer: e.obs,
			Log:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		},
	})
	e.rt = e.lb.Runtime
	e.addr = e.lb.Addr(443)
	e.pool = e.lb.CA.Pool()
	return e
}

func (e *env) endpoints(raw *rawTarget) map[string][]config.Endpoint {
	addrs := e.cluster.Addrs()
	return map[string][]config.Endpoint{
		lbtest.Service: lbtest.Endpoints(addrs...),
		echoService:    lbtest.Endpoints(append(addrs, raw.addr)...),
		heldService:    lbtest.Endpoints(addrs...),
	}
}

// replaceRaw registers a fresh raw target instead of the current one (a
// raw target that passive health ejected stays out for 10 s and more,
// doubling; a new endpoint starts over). The old one keeps running
// while l7lb drains it.
func (e *env) replaceRaw() error {
	raw, err := startRawTarget()
	if err != nil {
		return err
	}
	doc := strings.ReplaceAll(ingressDoc, lbtest.Placeholder, e.lb.ARN)
	objs, _, err := manifest.Parse("ingress.yaml", []byte(doc))
	if err != nil {
		return err
	}
	snap, err := ingress.Translate(objs, ingress.Options{Endpoints: e.endpoints(raw)})
	if err != nil {
		return err
	}
	if err := e.rt.Apply(snap); err != nil {
		return err
	}
	e.mu.Lock()
	e.oldRaws = append(e.oldRaws, e.raw)
	e.raw = raw
	e.mu.Unlock()
	return nil
}

func (e *env) rawTarget() *rawTarget {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.raw
}

func (e *env) allRaws() []*rawTarget {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*rawTarget{e.raw}, e.oldRaws...)
}

// echoGroup is the chaos group.
func (e *env) echoGroup() *targetgroup.Group {
	for _, tg := range e.rt.Snapshot().TargetGroups {
		if strings.HasPrefix(tg.Name, echoService+":") || tg.Name == echoService {
			return e.rt.Group(tg.Name)
		}
	}
	return nil
}

// targetStates describes the chaos group's targets.
func (e *env) targetStates() string {
	g := e.echoGroup()
	if g == nil {
		return "no chaos group"
	}
	var parts []string
	for _, t := range g.Targets() {
		s, reason, _ := t.State()
		name := t.Addr
		if t.Addr == e.rawTarget().addr {
			name = "raw " + name
		}
		parts = append(parts, fmt.Sprintf("%s=%s(%s)", name, s, reason))
	}
	return strings.Join(parts, " ")
}

// waitEchoHealthy waits (bounded) until every target of the chaos group
// is healthy; it replaces the raw target once if that one is not.
func (e *env) waitEchoHealthy(d time.Duration) bool {
	deadline := time.Now().Add(d)
	replaced := false
	for time.Now().Before(deadline) {
		g := e.echoGroup()
		ok, rawBad := g != nil, false
		if g != nil {
			for _, t := range g.Targets() {
				s, reason, _ := t.State()
				if s == targetgroup.StateDraining {
					continue
				}
				if s != targetgroup.StateHealthy {
					ok = false
					if t.Addr == e.rawTarget().addr && strings.Contains(reason, "Ejected") {
						rawBad = true
					}
				}
			}
		}
		if ok {
			return true
		}
		if rawBad && !replaced {
			replaced = true
			if err := e.replaceRaw(); err != nil {
				e.t.Logf("replace raw target: %v", err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// markGood records a well-behaved client's connection (its local
// address is the Client of its runtime.Flow entry).
func (e *env) markGood(local string) {
	e.mu.Lock()
	e.good[local] = true
	e.mu.Unlock()
}

func (e *env) isGood(local string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.good[local]
}

// goodDialer dials for the well-behaved clients and remembers their
// local addresses.
func (e *env) goodDialer(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		e.markGood(c.LocalAddr().String())
	}
	return c, err
}

// ---- the observer: which target answered each well-behaved RPC ----

// goodTracePrefix starts the trace ID of every well-behaved RPC, so the
// observer keeps only theirs.
const goodTracePrefix = "c4a05"

type obsRec struct {
	target, group, grpcStatus, resetBy, err string
	reset                                   uint32
}

type observer struct {
	mu   sync.Mutex
	recs map[string]obsRec
	// byGroup counts every RPC by target group, for the run's summary.
	byGroup map[string]int
}

func newObserver() *observer { return &observer{recs: map[string]obsRec{}, byGroup: map[string]int{}} }

// groupCount is how many RPCs went to target group g.
func (o *observer) groupCount(g string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.byGroup[g]
}

func (o *observer) RPCDone(r *observe.RPC) {
	o.mu.Lock()
	o.byGroup[r.TargetGroup]++
	o.mu.Unlock()
	tp := r.TraceParent
	if len(tp) != 55 || !strings.HasPrefix(tp[3:], goodTracePrefix) {
		return
	}
	rec := obsRec{target: r.Target, group: r.TargetGroup, grpcStatus: r.GRPCStatus, resetBy: r.ResetBy, err: r.Error, reset: r.Reset}
	o.mu.Lock()
	o.recs[tp[3:35]] = rec
	o.mu.Unlock()
}

func (o *observer) get(trace string) (obsRec, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.recs[trace]
	return r, ok
}

func (o *observer) reset() {
	o.mu.Lock()
	o.recs = map[string]obsRec{}
	o.mu.Unlock()
}

// newTrace makes a traceparent whose trace ID the observer keeps.
func newTrace(rng *rand.Rand) (trace, header string) {
	trace = fmt.Sprintf("%s%011x%016x", goodTracePrefix, rng.Uint64()&(1<<44-1), rng.Uint64()|1)
	header = fmt.Sprintf("00-%s-%016x-01", trace, rng.Uint64()|1)
	return trace, header
}

// ---- the SDK's collection ----

const (
	collection = "chaos"
	dim        = 8
)

func setupCollection(ctx context.Context, c *milvusclient.Client) error {
	schema := entity.NewSchema().WithName(collection).
		WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true).WithIsAutoID(true)).
		WithField(entity.NewField().WithName("vector").WithDataType(entity.FieldTypeFloatVector).WithDim(dim))
	if err := c.CreateCollection(ctx, milvusclient.NewCreateCollectionOption(collection, schema)); err != nil {
		return fmt.Errorf("create collection: %w", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	vecs := make([][]float32, 64)
	for i := range vecs {
		vecs[i] = vector(rng)
	}
	if _, err := c.Insert(ctx, milvusclient.NewColumnBasedInsertOption(collection).WithFloatVectorColumn("vector", dim, vecs)); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	task, err := c.CreateIndex(ctx, milvusclient.NewCreateIndexOption(collection, "vector", index.NewFlatIndex(entity.L2)))
	if err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	if err := task.Await(ctx); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	lt, err := c.LoadCollection(ctx, milvusclient.NewLoadCollectionOption(collection))
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if err := lt.Await(ctx); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return nil
}

func vector(rng *rand.Rand) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = rng.Float32()
	}
	return v
}
