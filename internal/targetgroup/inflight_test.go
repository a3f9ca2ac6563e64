package targetgroup

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/frameio"
	"github.com/l7lb/l7lb/internal/upstream"
)

// holdingTarget is an h2c target, frame by frame: it reads requests and
// answers none until release is closed, then resets every stream it got.
func holdingTarget(t *testing.T, release <-chan struct{}) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
			return
		}
		fr := http2.NewFramer(c, br)
		fr.WriteSettings()
		got := make(chan uint32, 16)
		go func() {
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					close(got)
					return
				}
				if h, ok := f.(*http2.HeadersFrame); ok {
					got <- h.StreamID
				}
			}
		}()
		<-release
		for {
			select {
			case id, ok := <-got:
				if !ok {
					return
				}
				fr.WriteRSTStream(id, http2.ErrCodeInternal)
			case <-time.After(5 * time.Second):
				return
			}
		}
	}()
	return ln.Addr().String()
}

type resetSink struct{ reset chan struct{} }

func (resetSink) Headers([]hpack.HeaderField, bool, *frameio.Batch) {}
func (resetSink) Data([]byte, bool, *frameio.Batch)                 {}
func (s resetSink) Reset(http2.ErrCode, error, bool)                { close(s.reset) }
func (resetSink) Sent(int)                                          {}

// A target's InFlight is what its upstream streams hold: 1 while the
// target holds a request, 0 once the target resets it. Draining waits
// for exactly that, so a removed target leaves the group when its last
// stream ends, not before and not at the deregistration delay.
func TestInFlightFollowsTargetStreams(t *testing.T) {
	release := make(chan struct{})
	addr := holdingTarget(t, release)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	g := New(config.TargetGroup{Name: "ns/svc:1", Protocol: config.ProtocolHTTP, ProtocolVersion: config.VersionGRPC,
		DeregistrationDelay: time.Minute, Endpoints: []config.Endpoint{{Address: host, Port: p, Ready: true}}},
		slog.New(slog.DiscardHandler), nil)
	defer g.Close()
	tgt, ok := g.Pick()
	if !ok {
		t.Fatal("no target")
	}
	sink := resetSink{reset: make(chan struct{})}
	encode := func(_ *upstream.Stream, w *frameio.Writer) {
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/svc/M"}, {":authority", "t"}} {
			w.EncodeField(f[0], f[1])
		}
	}
	if err := tgt.Conns.Open(new(upstream.Stream), sink, encode, true, nil); err != nil {
		t.Fatal(err)
	}
	if n := tgt.Meter.InFlight(); n != 1 {
		t.Fatalf("InFlight = %d with one stream open, want 1", n)
	}
	g.SetEndpoints(nil) // the target starts draining
	present := func() bool {
		for _, x := range g.Targets() {
			if x == tgt {
				return true
			}
		}
		return false
	}
	// Drain polls every 50 ms: well past that, a held stream still keeps it.
	time.Sleep(200 * time.Millisecond)
	if !present() {
		t.Fatal("the target left the group while its stream was in flight")
	}
	close(release)
	select {
	case <-sink.reset:
	case <-time.After(5 * time.Second):
		t.Fatal("the target's reset never reached the sink")
	}
	if n := tgt.Meter.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d after the target reset the stream, want 0", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for present() {
		if time.Now().After(deadline) {
			t.Fatal("drain did not finish after the last stream ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
