package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/fakemilvus/engine"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/runtime"
)

const serverName = lbtest.ServerName

// Health-check settings every case uses: interval 2 s, timeout 1 s,
// thresholds 2/2, so "interval x threshold" is 4 s.
const (
	hcInterval  = 2 * time.Second
	hcHealthy   = 2
	hcUnhealthy = 2
	// slack covers scheduling on a busy 2-core machine.
	slack = 1500 * time.Millisecond
)

const hcAnnotations = `    alb.ingress.kubernetes.io/healthcheck-interval-seconds: "2"
    alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "1"
    alb.ingress.kubernetes.io/healthy-threshold-count: "2"
    alb.ingress.kubernetes.io/unhealthy-threshold-count: "2"`

const retryAnnotation = `    l7lb.io/retry-policy: idempotent-reads`

// ingressDoc is the seed's Ingress with {{ARN}} and {{EXTRA}} (annotation
// lines).
var ingressDoc = lbtest.Ingress(`[{"HTTPS":443}]`, `    alb.ingress.kubernetes.io/scheme: internet-facing
{{EXTRA}}`)

func ingressYAML(arn, extra string) string {
	doc := strings.Replace(ingressDoc, "{{ARN}}", arn, 1)
	return strings.Replace(doc, "{{EXTRA}}", extra, 1)
}

// endpointSlicesYAML gives each replica its own EndpointSlice (one slice
// has one port list and the replicas differ by port).
func endpointSlicesYAML(addrs map[int]string) string {
	var b strings.Builder
	for i := 0; i < 16; i++ {
		a, ok := addrs[i]
		if !ok {
			continue
		}
		host, port, _ := net.SplitHostPort(a)
		fmt.Fprintf(&b, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  namespace: milvus
  name: milvus-demo-%d
  labels:
    kubernetes.io/service-name: milvus-demo
addressType: IPv4
ports:
  - port: %s
    protocol: TCP
endpoints:
  - addresses: ["%s"]
    conditions: {ready: true}
`, i, port, host)
	}
	return b.String()
}

// writeFileAtomic replaces path the way editors and config managers do:
// a new file renamed over the old one.
func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// backend is the 3-replica test cluster with a per-replica delay applied
// before the Milvus handler runs (fakemilvus's own SetLatency delays the
// reply after the handler ran, which would make a killed Insert "applied
// but unanswered" and blur the row accounting), and per-replica in-flight
// counters.
type backend struct {
	cluster  *fakemilvus.Cluster
	eng      *engine.Engine
	delay    []atomic.Int64 // time.Duration per replica
	inFlight []atomic.Int64
	handled  []atomic.Int64 // Search/Insert calls that reached the handler
}

const replicas = 3

func startBackend(t *testing.T, delay time.Duration) *backend {
	t.Helper()
	b := &backend{eng: engine.New(), delay: make([]atomic.Int64, replicas), inFlight: make([]atomic.Int64, replicas), handled: make([]atomic.Int64, replicas)}
	for i := range b.delay {
		b.delay[i].Store(int64(delay))
	}
	var next atomic.Int32
	cl, err := fakemilvus.Start(fakemilvus.Options{
		Replicas:  replicas,
		Engine:    b.eng,
		StopGrace: 10 * time.Second,
		MilvusServer: func(notReady func() bool) milvuspb.MilvusServiceServer {
			i := int(next.Add(1) - 1) // replicas are built in index order
			return &slowServer{MilvusServiceServer: b.eng.Server(engine.ServerOptions{NotReady: notReady}), b: b, i: i}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	b.cluster = cl
	return b
}

func (b *backend) replica(i int) *fakemilvus.Replica { return b.cluster.Replicas()[i] }

func (b *backend) addrMap(skip ...int) map[int]string {
	m := map[int]string{}
	for i, a := range b.cluster.Addrs() {
		m[i] = a
	}
	for _, s := range skip {
		delete(m, s)
	}
	return m
}

type slowServer struct {
	milvuspb.MilvusServiceServer
	b *backend
	i int
}

func (s *slowServer) wait(ctx context.Context) error {
	s.b.handled[s.i].Add(1)
	d := time.Duration(s.b.delay[s.i].Load())
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowServer) Search(ctx context.Context, req *milvuspb.SearchRequest) (*milvuspb.SearchResults, error) {
	s.b.inFlight[s.i].Add(1)
	defer s.b.inFlight[s.i].Add(-1)
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.MilvusServiceServer.Search(ctx, req)
}

func (s *slowServer) Insert(ctx context.Context, req *milvuspb.InsertRequest) (*milvuspb.MutationResult, error) {
	s.b.inFlight[s.i].Add(1)
	defer s.b.inFlight[s.i].Add(-1)
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.MilvusServiceServer.Insert(ctx, req)
}

// logBuf collects log output safely and lets a case wait for a line.
type logBuf struct{ lbtest.Buffer }

// linesSince returns the log lines after byte offset off that satisfy ok.
func (l *logBuf) linesSince(off int, ok func(string) bool) []string {
	s := l.String()
	if off > len(s) {
		off = len(s)
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s[off:]))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if ok == nil || ok(sc.Text()) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// waitLine waits up to d for a line after off that satisfies ok.
func (l *logBuf) waitLine(off int, d time.Duration, ok func(string) bool) (string, bool) {
	deadline := time.Now().Add(d)
	for {
		if ls := l.linesSince(off, ok); len(ls) > 0 {
			return ls[0], true
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inproc is l7lb's runtime in the test process, so the case can read
// rt.Status() for target states.
type inproc struct {
	*backend
	rt    *runtime.Runtime
	addr  string
	certs *lbtest.Certs
	logs  *logBuf
}

func startInProcess(t *testing.T, be *backend, extra string) *inproc {
	t.Helper()
	logs := &logBuf{}
	lb := lbtest.Start(t, lbtest.Options{
		Ingress:   strings.Replace(ingressDoc, "{{EXTRA}}", extra, 1),
		Endpoints: map[string][]config.Endpoint{lbtest.Service: lbtest.Endpoints(be.cluster.Addrs()...)},
		Runtime:   runtime.Options{Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		CAName:    "fault suite CA",
	})
	for _, w := range lb.Snapshot.Warnings {
		t.Logf("translate warning: %v", w)
	}
	e := &inproc{backend: be, rt: lb.Runtime, certs: lb.Certs, logs: logs}
	if e.addr = lb.Addr(443); e.addr == "" {
		t.Fatal("no listener for 443")
	}
	return e
}

// group is the one target group's name.
func (e *inproc) group() string {
	st := e.rt.Status()
	if len(st.Groups) == 0 {
		return ""
	}
	return st.Groups[0].Name
}

// state reports replica i's target state and reason.
func (e *inproc) state(i int) (string, string) {
	addr := e.cluster.Addrs()[i]
	for _, g := range e.rt.Status().Groups {
		for _, ts := range g.Targets {
			if ts.Address == addr {
				return ts.State, ts.Reason
			}
		}
	}
	return "absent", ""
}

func (e *inproc) states() string {
	var parts []string
	for i := 0; i < replicas; i++ {
		s, r := e.state(i)
		if r != "" {
			s += "(" + r + ")"
		}
		parts = append(parts, fmt.Sprintf("replica-%d=%s", i, s))
	}
	return strings.Join(parts, " ")
}

// waitState polls replica i until its state is want or d passes; it
// returns how long after since that was seen.
func (e *inproc) waitState(i int, want string, d time.Duration) (time.Duration, bool) {
	return e.waitStateSince(i, want, time.Now(), d)
}

func (e *inproc) waitStateSince(i int, want string, since time.Time, d time.Duration) (time.Duration, bool) {
	for {
		if s, _ := e.state(i); s == want {
			return time.Since(since), true
		}
		if time.Since(since) > d {
			return time.Since(since), false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// watchState records replica i's state changes from since on; the
// returned func stops the watch and describes them.
func (e *inproc) watchState(i int, since time.Time) func() string {
	stop := make(chan struct{})
	done := make(chan struct{})
	var changes []string
	go func() {
		defer close(done)
		prev := ""
		for {
			s, r := e.state(i)
			if cur := s + " " + r; cur != prev {
				prev = cur
				changes = append(changes, fmt.Sprintf("+%v %s %q", time.Since(since).Round(time.Millisecond), s, r))
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() string {
		close(stop)
		<-done
		return strings.Join(changes, " -> ")
	}
}

// proc is l7lb running as its own process (the signal and file cases).
type proc struct {
	*backend
	certs       *lbtest.Certs
	cmd         *exec.Cmd
	addr        string
	addrFile    string
	dir         string
	ingressFile string
	slicesFile  string
	logs        *logBuf
	admin       string // the admin listener (JSON API, /readyz), "" if not found
	exited      chan struct{}
	exitErr     error
	ingressText string
}

type procOptions struct {
	extra string
	// slices puts the endpoints in an EndpointSlice file instead of
	// --endpoints.
	slices bool
	drain  time.Duration
}

func startProcess(t *testing.T, be *backend, o procOptions) *proc {
	t.Helper()
	bin := l7lbBinary(t)
	cs := lbtest.NewCerts(t, "fault suite CA")
	dir := t.TempDir()
	p := &proc{backend: be, certs: cs, dir: dir, logs: &logBuf{}, exited: make(chan struct{})}
	p.ingressFile = filepath.Join(dir, "ingress.yaml")
	p.ingressText = ingressYAML(cs.ARN, o.extra)
	writeFileAtomic(t, p.ingressFile, p.ingressText)
	p.addrFile = filepath.Join(dir, "addrs.json")
	args := []string{"serve", "-f", p.ingressFile, "--store", cs.Dir,
		"--listen", "443=127.0.0.1:0", "--addr-file", p.addrFile, "--log-level", "info", "--admin", "127.0.0.1:0"}
	if o.slices {
		p.slicesFile = filepath.Join(dir, "endpoints.yaml")
		writeFileAtomic(t, p.slicesFile, endpointSlicesYAML(be.addrMap()))
		args = append(args, "-f", p.slicesFile)
	} else {
		args = append(args, "--endpoints", "milvus/milvus-demo="+strings.Join(be.cluster.Addrs(), ","))
	}
	if o.drain > 0 {
		args = append(args, "--drain-timeout", o.drain.String())
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // best effort
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill() //nolint:errcheck // it did not stop
			<-p.exited
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for p.addr == "" {
		if b, err := os.ReadFile(p.addrFile); err == nil {
			var m map[string]string
			if json.Unmarshal(b, &m) == nil && m["443"] != "" {
				p.addr = m["443"]
				break
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("l7lb exited before serving (%v):\n%s", p.exitErr, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("l7lb did not write %s:\n%s", p.addrFile, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if line, ok := p.logs.waitLine(0, 5*time.Second, func(s string) bool { return strings.Contains(s, "admin: ") && strings.Contains(s, "http://") }); ok {
		a := line[strings.Index(line, "http://")+len("http://"):]
		if i := strings.IndexAny(a, "/ \""); i >= 0 {
			a = a[:i]
		}
		p.admin = a
	} else {
		t.Logf("no admin listener address in the log; admin checks skipped")
	}
	return p
}

// adminGet fetches path from the admin listener.
func (p *proc) adminGet(path string) (int, string, error) {
	if p.admin == "" {
		return 0, "", fmt.Errorf("no admin listener")
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + p.admin + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// tail returns the last n lines of the log.
func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
