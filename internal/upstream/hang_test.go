package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/balance/load"
	"github.com/l7lb/l7lb/internal/frameio"
)

// pingTarget is a raw-frame target for the hang watch: it answers PINGs
// or not, and answers each request after a delay (or never, when the
// delay is negative). It counts the PINGs it got.
type pingTarget struct {
	answerPings bool
	delay       time.Duration
	pings       atomic.Int32
}

func (pt *pingTarget) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); pt.serve(c) }()
		}
	}()
	return ln.Addr().String()
}

func (pt *pingTarget) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	var mu sync.Mutex // the framer's writes
	fr := http2.NewFramer(c, br)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	fr.WriteSettings()
	var answers sync.WaitGroup
	defer answers.Wait()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				mu.Lock()
				fr.WriteSettingsAck()
				mu.Unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				pt.pings.Add(1)
				if pt.answerPings {
					mu.Lock()
					fr.WritePing(true, f.Data)
					mu.Unlock()
				}
			}
		case *http2.HeadersFrame:
			if !f.StreamEnded() || pt.delay < 0 {
				continue
			}
			id := f.StreamID
			answers.Add(1)
			time.AfterFunc(pt.delay, func() {
				defer answers.Done()
				mu.Lock()
				defer mu.Unlock()
				writeHeaders(fr, enc, &hbuf, id, false, ":status", "200", "content-type", "application/grpc")
				fr.WriteData(id, false, []byte{0, 0, 0, 0, 0})
				writeHeaders(fr, enc, &hbuf, id, true, "grpc-status", "0")
			})
		}
	}
}

// hangReports collects what Conns.OnHang reports.
type hangReports struct {
	mu   sync.Mutex
	errs []error
}

func (h *hangReports) add(err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

func (h *hangReports) list() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.errs...)
}

// A frozen target (the kernel accepts its connection and takes its bytes,
// nothing answers, not even a PING) is reported hung about a second after
// the request went out, and the request itself is left alone: a pause
// that ends in time must cost no RPC.
func TestHungTargetReported(t *testing.T) {
	pt := &pingTarget{delay: -1}
	addr := pt.start(t)
	var hung hangReports
	cs := NewConns(addr, false, nil)
	cs.OnHang = hung.add
	defer cs.Abort()
	sink := newSink()
	s := new(Stream)
	start := time.Now()
	if err := cs.Open(s, sink, encodeGRPC, true, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hang report", func() bool { return len(hung.list()) > 0 })
	took := time.Since(start)
	if took < HangTimeout || took > HangProbeAfter*2+HangTimeout+time.Second {
		t.Errorf("hang reported after %v; want between HangTimeout (%v) and about a second", took, HangTimeout)
	}
	if msg := hung.list()[0].Error(); !strings.Contains(msg, "answered nothing, not even a PING") || !strings.Contains(msg, "held 1 requests") {
		t.Errorf("hang report %q does not say what was seen", msg)
	}
	if n := pt.pings.Load(); n != 1 {
		t.Errorf("target got %d PINGs during one silent spell, want 1", n)
	}
	select {
	case r := <-sink.reset:
		t.Fatalf("the held request was reset (%v, %v): a hang report must not fail requests", r.code, r.err)
	case <-time.After(3 * HangProbeAfter):
	}
	// One report per hang, not one per tick.
	if n := len(hung.list()); n != 1 {
		t.Errorf("%d hang reports for one hang, want 1", n)
	}
}

// A target that takes long over a request but answers PINGs is alive: no
// hang report. It gets one PING per silent spell, never more, so that a
// gRPC server's keepalive enforcement (grpc-go: three PINGs while it sends
// nothing close the connection with too_many_pings) is never provoked.
// The time to the first answer is what the target's meter records.
func TestSlowTargetNotHung(t *testing.T) {
	pt := &pingTarget{answerPings: true, delay: 5*HangProbeAfter + HangTimeout}
	addr := pt.start(t)
	var hung hangReports
	m := new(load.Meter)
	cs := NewConns(addr, false, m)
	cs.OnHang = hung.add
	defer cs.Abort()
	sink := newSink()
	done := make(chan struct{})
	ds := &doneSink{recordingSink: sink, done: done}
	s := new(Stream)
	if err := cs.Open(s, ds, encodeGRPC, true, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer from the slow target")
	}
	if errs := hung.list(); len(errs) > 0 {
		t.Errorf("a slow target that answers PINGs was reported hung: %v", errs[0])
	}
	if n := pt.pings.Load(); n != 1 {
		t.Errorf("target got %d PINGs during one silent spell, want exactly 1", n)
	}
	if d, ok := m.Latency(); !ok || d < pt.delay || d > pt.delay+time.Second {
		t.Errorf("meter latency %v (measured %v), want about the target's delay %v", d, ok, pt.delay)
	}
	waitFor(t, "the stream to end", func() bool { return m.InFlight() == 0 })
}

// A target that stays frozen for StallTimeout while it holds requests is
// given up: its streams fail, so that clients without a deadline are not
// held forever.
func TestHungTargetGivenUp(t *testing.T) {
	old := StallTimeout
	StallTimeout = 2 * time.Second
	defer func() { StallTimeout = old }()
	pt := &pingTarget{delay: -1}
	addr := pt.start(t)
	cs := NewConns(addr, false, nil)
	var hung hangReports
	cs.OnHang = hung.add
	defer cs.Abort()
	sink := newSink()
	s := new(Stream)
	if err := cs.Open(s, sink, encodeGRPC, true, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-sink.reset:
		if r.err == nil || !strings.Contains(r.err.Error(), "answered nothing for") {
			t.Errorf("stream failed with %v, %v; want the hang named", r.code, r.err)
		}
	case <-time.After(StallTimeout + 5*time.Second):
		t.Fatal("a target frozen past StallTimeout still holds its stream")
	}
	if len(hung.list()) != 1 {
		t.Errorf("%d hang reports, want 1 before the connection was given up", len(hung.list()))
	}
}

// doneSink closes done when the response ends.
type doneSink struct {
	*recordingSink
	done chan struct{}
	once sync.Once
}

func (d *doneSink) Headers(_ []hpack.HeaderField, end bool, _ *frameio.Batch) {
	if end {
		d.once.Do(func() { close(d.done) })
	}
}
