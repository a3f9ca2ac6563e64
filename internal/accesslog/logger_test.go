package accesslog

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/observe"
)

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func sample() *observe.RPC {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &observe.RPC{
		Start: t0, TargetStart: t0.Add(time.Millisecond), TargetFirstByte: t0.Add(3 * time.Millisecond), End: t0.Add(4 * time.Millisecond),
		ListenerPort: 443, Rule: "milvus/milvus-demo#0", TargetGroup: "milvus/milvus-demo:19530", Target: "10.0.0.1:19530",
		Method: "POST", Path: "/milvus.proto.milvus.MilvusService/Search", Authority: "milvus-demo.milvus.io", GRPC: true,
		HTTPStatus: 200, GRPCStatus: "0", BytesIn: 100, BytesOut: 200, ClientAddr: "127.0.0.1:5555", UserAgent: "grpc-go/1.85.0",
		TraceParent: tp, CertARN: "arn:l7lb:acm:local:000000000000:certificate/abc",
		TLS: &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, ServerName: "milvus-demo.milvus.io", NegotiatedProtocol: "h2"},
	}
}

func logLines(t *testing.T, opts Options, rpcs ...*observe.RPC) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	l := New(&buf, opts)
	for _, r := range rpcs {
		l.RPCDone(r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if s == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", s, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLineFields(t *testing.T) {
	rest := sample()
	rest.GRPC, rest.Path, rest.GRPCStatus, rest.HTTPStatus, rest.TLS = false, "/v2/vectordb/collections/list", "", 200, nil
	noTarget := sample()
	noTarget.Target, noTarget.TargetStart, noTarget.TargetFirstByte, noTarget.GRPCStatus = "", time.Time{}, time.Time{}, "14"
	noTarget.Error = "l7lb: no reachable target in target group milvus/milvus-demo:19530"
	for _, tc := range []struct {
		name string
		rpc  *observe.RPC
		want map[string]any
	}{
		{"grpc over tls", sample(), map[string]any{
			"type": "grpcs", "client": "127.0.0.1:5555", "target": "10.0.0.1:19530", "elb_status_code": 200.0,
			"request_processing_time": 0.001, "target_processing_time": 0.002, "response_processing_time": 0.001,
			"received_bytes": 100.0, "sent_bytes": 200.0, "user_agent": "grpc-go/1.85.0",
			"ssl_cipher": "TLS_AES_128_GCM_SHA256", "ssl_protocol": "TLS 1.3", "domain_name": "milvus-demo.milvus.io",
			"chosen_cert_arn": "arn:l7lb:acm:local:000000000000:certificate/abc", "target_group": "milvus/milvus-demo:19530",
			"matched_rule": "milvus/milvus-demo#0", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "traceparent": tp,
			"grpc_service": "milvus.proto.milvus.MilvusService", "grpc_method": "Search", "grpc_status": "0",
			"request": "POST https://milvus-demo.milvus.io/milvus.proto.milvus.MilvusService/Search HTTP/2.0",
			"time":    "2026-01-02T03:04:05.004Z", "request_creation_time": "2026-01-02T03:04:05Z", "error_reason": "-",
		}},
		{"rest over http/1.1", rest, map[string]any{
			"type": "http", "ssl_cipher": "-", "ssl_protocol": "-", "domain_name": "-",
			"request": "POST http://milvus-demo.milvus.io/v2/vectordb/collections/list HTTP/1.1",
		}},
		{"l7lb's own error", noTarget, map[string]any{
			"target": "-", "request_processing_time": -1.0, "target_processing_time": -1.0, "grpc_status": "14",
			"error_reason": "l7lb: no reachable target in target group milvus/milvus-demo:19530",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := logLines(t, Options{}, tc.rpc)
			if len(lines) != 1 {
				t.Fatalf("%d lines", len(lines))
			}
			for k, v := range tc.want {
				if got := lines[0][k]; got != v {
					t.Errorf("%s = %#v, want %#v", k, got, v)
				}
			}
		})
	}
}

func TestSampling(t *testing.T) {
	var rpcs []*observe.RPC
	for i := 0; i < 100; i++ {
		rpcs = append(rpcs, sample())
	}
	bad := sample()
	bad.GRPCStatus = "14"
	rpcs = append(rpcs, bad)
	for _, tc := range []struct {
		sample, want int
	}{{0, 101}, {1, 101}, {10, 11}, {1000, 1}} {
		if n := len(logLines(t, Options{Sample: tc.sample}, rpcs...)); n != tc.want {
			t.Errorf("sample %d: %d lines, want %d (errors always logged)", tc.sample, n, tc.want)
		}
	}
}

// blockingWriter holds every write until released: the writer goroutine
// is stuck, so RPCDone must drop instead of blocking. entered is closed
// when the first write starts.
type blockingWriter struct {
	release chan struct{}
	entered chan struct{}
	once    sync.Once
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{release: make(chan struct{}), entered: make(chan struct{})}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return len(p), nil
}

// waitEntered waits until the logger's goroutine is stuck in a write.
func (b *blockingWriter) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-b.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the logger never wrote its first line")
	}
}

type counter struct {
	mu             sync.Mutex
	lines, dropped int
}

func (c *counter) AccessLogLine()    { c.mu.Lock(); c.lines++; c.mu.Unlock() }
func (c *counter) AccessLogDropped() { c.mu.Lock(); c.dropped++; c.mu.Unlock() }

func TestDropsWhenFull(t *testing.T) {
	w := newBlockingWriter()
	c := &counter{}
	l := New(w, Options{Buffer: 4, Counter: c})
	// Once the writer is stuck on a first line, the buffer takes 4 more
	// and the other 96 must be dropped.
	l.RPCDone(sample())
	w.waitEntered(t)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			l.RPCDone(sample())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RPCDone blocked on a stuck writer")
	}
	if l.Dropped() != 96 {
		t.Errorf("dropped %d of 100 with a buffer of 4 and the writer stuck, want 96", l.Dropped())
	}
	close(w.release)
	l.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lines != 5 || c.dropped != 96 {
		t.Errorf("%d written + %d dropped, want 5 + 96", c.lines, c.dropped)
	}
}

func TestRPCDoneDoesNotAllocate(t *testing.T) {
	// The writer is held on its first line, so only RPCDone runs while
	// allocations are counted.
	w := newBlockingWriter()
	l := New(w, Options{Buffer: 5000})
	r := sample()
	l.RPCDone(r)
	w.waitEntered(t)
	n := testing.AllocsPerRun(1000, func() { l.RPCDone(r) })
	close(w.release)
	l.Close()
	if n != 0 {
		t.Errorf("RPCDone allocates %v times per request", n)
	}
}
