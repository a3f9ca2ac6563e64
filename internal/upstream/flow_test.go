package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/balance/load"
	"github.com/l7lb/l7lb/internal/frameio"
)

// rawTarget is a target whose every frame the test decides: for each
// request that ends it calls answer with a framer (under a lock).
type rawTarget struct {
	ln       net.Listener
	settings []http2.Setting
	answer   func(fr *http2.Framer, enc *hpack.Encoder, hbuf *bytes.Buffer, id uint32)
}

func startRawTarget(t *testing.T, settings []http2.Setting, answer func(fr *http2.Framer, enc *hpack.Encoder, hbuf *bytes.Buffer, id uint32)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt := &rawTarget{ln: ln, settings: settings, answer: answer}
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
			go func() { defer wg.Done(); rt.serve(c) }()
		}
	}()
	return ln.Addr().String()
}

func (rt *rawTarget) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(c, br)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	fr.WriteSettings(rt.settings...)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				rt.answer(fr, enc, &hbuf, f.StreamID)
			}
		}
	}
}

func writeHeaders(fr *http2.Framer, enc *hpack.Encoder, hbuf *bytes.Buffer, id uint32, end bool, fields ...string) {
	hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true, EndStream: end})
}

// recordingSink keeps what a stream got; it never grants window back,
// like a client that stops reading.
type recordingSink struct {
	mu    sync.Mutex
	data  int
	reset chan resetInfo
	sent  int
}

type resetInfo struct {
	code http2.ErrCode
	err  error
}

func newSink() *recordingSink { return &recordingSink{reset: make(chan resetInfo, 4)} }

func (s *recordingSink) Headers([]hpack.HeaderField, bool, *frameio.Batch) {}
func (s *recordingSink) Data(p []byte, _ bool, _ *frameio.Batch) {
	s.mu.Lock()
	s.data += len(p)
	s.mu.Unlock()
}
func (s *recordingSink) Reset(code http2.ErrCode, err error, _ bool) { s.reset <- resetInfo{code, err} }
func (s *recordingSink) Sent(n int) {
	s.mu.Lock()
	s.sent += n
	s.mu.Unlock()
}

func (s *recordingSink) sentTotal() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *recordingSink) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

func encodeGRPC(_ *Stream, w *frameio.Writer) {
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/svc/M"}, {":authority", "t"}, {"content-type", "application/grpc"}} {
		w.EncodeField(f[0], f[1])
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A sink that never takes its bytes (a client that stops reading) holds
// its streams' windows, never the connection's: after far more than the
// connection window went to such streams and they were cancelled, the
// connection's window is whole and nothing is in flight.
func TestConnWindowCreditedOnArrival(t *testing.T) {
	addr := startRawTarget(t, nil, func(fr *http2.Framer, enc *hpack.Encoder, hbuf *bytes.Buffer, id uint32) {
		writeHeaders(fr, enc, hbuf, id, false, ":status", "200")
		fr.WriteData(id, false, make([]byte, StreamWindowFloor)) // all the stream window allows
	})
	var inFlight = new(load.Meter)
	cs := NewConns(addr, false, inFlight)
	defer cs.Abort()
	const streams = 1500 // 1500 x 16 KiB = 23 MiB > the 16 MiB connection window
	sinks := make([]*recordingSink, streams)
	ups := make([]*Stream, streams)
	for i := range streams {
		sinks[i], ups[i] = newSink(), new(Stream)
		if err := cs.Open(ups[i], sinks[i], encodeGRPC, true, nil); err != nil {
			t.Fatal(err)
		}
		// Keep at most 100 open, so the target's default concurrency
		// never refuses one; the oldest are cancelled unread.
		if i >= 100 {
			j := i - 100
			waitFor(t, "a stream's window to fill", func() bool { return sinks[j].received() == StreamWindowFloor })
			ups[j].Cancel(http2.ErrCodeCancel)
		}
	}
	for j := streams - 100; j < streams; j++ {
		waitFor(t, "the last streams' windows to fill", func() bool { return sinks[j].received() == StreamWindowFloor })
		ups[j].Cancel(http2.ErrCodeCancel)
	}
	waitFor(t, "no request in flight", func() bool { return inFlight.InFlight() == 0 })
	for _, f := range cs.Flow() {
		if f.Streams != 0 || f.RecvWindow != f.RecvWindowInitial {
			t.Fatalf("connection after all streams ended: %+v; want no stream and the whole receive window", f)
		}
	}
}

// A target that sends more than a stream's window is reset with
// FLOW_CONTROL_ERROR on that stream; l7lb never buffers beyond windows.
func TestStreamWindowEnforced(t *testing.T) {
	addr := startRawTarget(t, nil, func(fr *http2.Framer, enc *hpack.Encoder, hbuf *bytes.Buffer, id uint32) {
		writeHeaders(fr, enc, hbuf, id, false, ":status", "200")
		fr.WriteData(id, false, make([]byte, StreamWindowFloor))
		fr.WriteData(id, false, make([]byte, 1)) // one byte over
	})
	cs := NewConns(addr, false, nil)
	defer cs.Abort()
	sink := newSink()
	if err := cs.Open(new(Stream), sink, encodeGRPC, true, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-sink.reset:
		if r.code != http2.ErrCodeFlowControl {
			t.Fatalf("reset %v (%v), want FLOW_CONTROL_ERROR", r.code, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reset for a window overrun")
	}
	if got := sink.received(); got != StreamWindowFloor {
		t.Fatalf("sink got %d bytes, want only the %d the window allowed", got, StreamWindowFloor)
	}
}

// Invalid target SETTINGS end the connection with an error naming the
// target, instead of making l7lb spin or overflow.
func TestInvalidTargetSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    http2.Setting
	}{
		{"max frame below 16384", http2.Setting{ID: http2.SettingMaxFrameSize, Val: 100}},
		{"initial window above 2^31-1", http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startRawTarget(t, []http2.Setting{tc.s}, func(*http2.Framer, *hpack.Encoder, *bytes.Buffer, uint32) {})
			cs := NewConns(addr, false, nil)
			defer cs.Abort()
			sink := newSink()
			if err := cs.Open(new(Stream), sink, encodeGRPC, true, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-sink.reset:
				if r.err == nil {
					t.Fatalf("stream reset with %v and no connection error", r.code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("invalid SETTINGS accepted")
			}
		})
	}
}

// A connection retired for reaching the target's MAX_CONCURRENT_STREAMS
// closes once its streams end, instead of leaking.
func TestRetiredConnectionCloses(t *testing.T) {
	release := make(chan struct{})
	addr := startRawTarget(t, []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 1}}, func(fr *http2.Framer, enc *hpack.Encoder, hbuf *bytes.Buffer, id uint32) {
		go func() {
			<-release
			writeHeaders(fr, enc, hbuf, id, true, ":status", "200", "grpc-status", "0")
		}()
	})
	var inFlight = new(load.Meter)
	cs := NewConns(addr, false, inFlight)
	defer cs.Abort()
	first := new(Stream)
	if err := cs.Open(first, newSink(), encodeGRPC, true, nil); err != nil {
		t.Fatal(err)
	}
	// The limit arrives with the target's SETTINGS; the next open then
	// needs a second connection.
	waitFor(t, "the target's SETTINGS", func() bool {
		first.c.w.Lock()
		defer first.c.w.Unlock()
		return first.c.maxStreams == 1
	})
	if err := cs.Open(new(Stream), newSink(), encodeGRPC, true, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(cs.Flow()); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	close(release)
	waitFor(t, "both streams to end", func() bool { return inFlight.InFlight() == 0 })
	waitFor(t, "the retired connection to close", func() bool { return len(cs.Flow()) == 1 })
}

// A target that takes a request's first 64 KiB and never grants more
// connection window is given up after StallTimeout, even while new
// requests keep arriving: its streams fail with an error naming the
// stall, and Stalls counts it.
func TestStalledTargetGivenUp(t *testing.T) {
	defer func(d time.Duration) { StallTimeout = d }(StallTimeout)
	StallTimeout = 300 * time.Millisecond
	// The raw target never sends WINDOW_UPDATE: the connection window
	// stays at the protocol's initial 65535 bytes.
	addr := startRawTarget(t, []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 30}}, func(*http2.Framer, *hpack.Encoder, *bytes.Buffer, uint32) {})
	cs := NewConns(addr, false, nil)
	defer cs.Abort()
	before := Stalls()
	sink := newSink()
	up := new(Stream)
	if err := cs.Open(up, sink, encodeGRPC, false, nil); err != nil {
		t.Fatal(err)
	}
	up.Data(make([]byte, 100<<10), true, nil) // 35 KiB wait for window
	// New blocked requests every 50 ms must not postpone the check.
	for range 20 {
		s := new(Stream)
		if err := cs.Open(s, newSink(), encodeGRPC, false, nil); err != nil {
			break // the stalled connection is gone, as it should be
		}
		s.Data(make([]byte, 1024), true, nil)
		select {
		case r := <-sink.reset:
			if r.err == nil || !strings.Contains(r.err.Error(), "granted no flow-control window") {
				t.Fatalf("stream reset with %v / %v, want the stall named", r.code, r.err)
			}
			if Stalls() != before+1 {
				t.Fatalf("Stalls = %d, want %d", Stalls(), before+1)
			}
			if got := sink.sentTotal(); got != 100<<10 {
				t.Fatalf("sink told of %d request bytes written or dropped, want all %d", got, 100<<10)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("a target granting no window was not given up within 1 s (StallTimeout 300 ms)")
}
