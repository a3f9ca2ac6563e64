// Package flood checks, black-box, that l7lb's HTTP/2 listener protects
// itself against abusive clients: each flood below comes from a raw x/net
// http2.Framer client over TLS (ALPN h2) and must get that connection
// closed with a GOAWAY carrying the required error code within a bounded
// time, while a well-behaved gRPC client on another connection keeps being
// served throughout with zero failed RPCs.
//
// The tests only talk to a running listener, so they hold for whatever
// HTTP/2 engine internal/listener hands connections to: today that is
// internal/h2proxy, l7lb's own frame-level engine. The required behaviour
// of each case is its want column (see the want* variables, whose comments
// also say how h2proxy meets it).
package flood

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/fakemilvus/echo"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
)

// expectation is what l7lb must do to the offending connection.
type expectation struct {
	// goAway lists the acceptable error codes of the GOAWAY l7lb must
	// send before closing the connection.
	goAway []http2.ErrCode
}

func (e expectation) String() string {
	var s []string
	for _, c := range e.goAway {
		s = append(s, c.String())
	}
	return "GOAWAY(" + strings.Join(s, " or ") + ") then close"
}

// The required behaviour of each case. They are variables so that the
// requirement is stated once, by name, where it can be read and decided on.
//
// Each comment also says what h2proxy does. Its flood limits count frames
// per connection in one-second windows and allow 1,000 a window
// (floodLimitPerSecond); a limit passed ends the connection with
// GOAWAY(ENHANCE_YOUR_CALM), saying which in its debug data, then closes
// it. The test's log shows every frame l7lb sent.
var (
	// wantRapidReset: HEADERS then RST_STREAM, over and over
	// (CVE-2023-44487). h2proxy opens each stream on a target at once
	// and passes the client's reset on to it (RST_STREAM CANCEL); the
	// client's 1,001st reset of an open stream within a second ends the
	// connection with GOAWAY(ENHANCE_YOUR_CALM, "too many streams reset")
	// and cancels the streams still open. The requests carry no message,
	// so no backend Echo handler runs for them (a unary handler starts
	// once its message has arrived); the log counts the backends' calls.
	wantRapidReset = expectation{goAway: []http2.ErrCode{http2.ErrCodeEnhanceYourCalm}}
	// wantContinuationFlood: an endless header block (CVE-2023-45288).
	// h2proxy decodes a header block fragment by fragment and stops
	// keeping fields once the list passes the SETTINGS_MAX_HEADER_LIST_SIZE
	// it advertises (64 KiB); the next fragment that does not end the
	// block is not decoded: GOAWAY(PROTOCOL_ERROR) and the connection
	// closes, a few frames into the flood. ENHANCE_YOUR_CALM is accepted
	// too: h2proxy sends it for an oversized block that did end (see
	// wantOversizedHeaderList).
	wantContinuationFlood = expectation{goAway: []http2.ErrCode{http2.ErrCodeProtocol, http2.ErrCodeEnhanceYourCalm}}
	// wantPingFlood: PINGs whose ACKs are never read (CVE-2019-9512).
	// h2proxy acknowledges PINGs while a client sends at most 1,000 in a
	// second beyond one per DATA or HEADERS frame l7lb sent it in that
	// second (gRPC clients ping to estimate bandwidth as replies arrive;
	// this client gets no replies). The next PING ends the connection with
	// GOAWAY(ENHANCE_YOUR_CALM, "too many PING frames"), queued behind the
	// 1,000 ACKs. Whatever the rate, more than 10,000 control frames
	// waiting for the connection's writer (frameio.MaxQueuedControlFrames:
	// a client that does not read) also end it with ENHANCE_YOUR_CALM.
	wantPingFlood = expectation{goAway: []http2.ErrCode{http2.ErrCodeEnhanceYourCalm}}
	// wantSettingsFlood: SETTINGS frames whose ACKs are never read
	// (CVE-2019-9515). h2proxy applies and acknowledges each one while a
	// client sends at most 1,000 in a second (its handshake SETTINGS
	// included); the next ends the connection with
	// GOAWAY(ENHANCE_YOUR_CALM, "too many SETTINGS frames"). The bound on
	// queued control frames holds here too.
	wantSettingsFlood = expectation{goAway: []http2.ErrCode{http2.ErrCodeEnhanceYourCalm}}
	// wantOversizedHeaderList: one request whose header list is several
	// times the SETTINGS_MAX_HEADER_LIST_SIZE l7lb advertises. RFC 9113
	// §10.5.1 also allows a 431 response on a connection kept open; the
	// project asks for the connection to be closed. h2proxy handles it as
	// the CONTINUATION flood: once the list has passed the limit, the next
	// fragment that does not end the block gets GOAWAY(PROTOCOL_ERROR)
	// without being decoded. Had only the block's last fragment passed the
	// limit, the block would end decoded and h2proxy would send
	// ENHANCE_YOUR_CALM. RFC 9113 §4.3 asks a receiver that does not
	// decompress a field block for COMPRESSION_ERROR, which is h2proxy's
	// case here, but h2proxy sends COMPRESSION_ERROR only for a fragment
	// that fails to decode (a string longer than the limit, say). All
	// three codes are accepted.
	wantOversizedHeaderList = expectation{goAway: []http2.ErrCode{http2.ErrCodeProtocol, http2.ErrCodeEnhanceYourCalm, http2.ErrCodeCompression}}
)

const (
	// closeWithin bounds each case from the end of the client's handshake
	// to l7lb closing the connection.
	closeWithin = 10 * time.Second
	// floodBudget bounds the time the client spends writing a flood.
	floodBudget = 6 * time.Second
	// frameSize is the size of header fragments the client writes: the
	// default SETTINGS_MAX_FRAME_SIZE, always allowed.
	frameSize = 16384
	// goodClientTail: the well-behaved client keeps running this long
	// after the attack and must be served in that time too.
	goodClientTail = 300 * time.Millisecond
	// goodMaxLatency bounds each of the well-behaved client's RPCs (a
	// loopback echo normally takes well under a millisecond).
	goodMaxLatency = 2 * time.Second
)

const serverName = lbtest.ServerName

var floodIngress = lbtest.Ingress(`[{"HTTPS":443}]`, "")

type floodCase struct {
	name string
	// flood writes the attack; it returns when done, when the budget
	// ends or when a write fails (l7lb hung up).
	flood func(t *testing.T, c *rawConn) floodResult
	// readWhileFlooding: the attacker reads l7lb's frames concurrently;
	// false for floods whose point is not reading the replies.
	readWhileFlooding bool
	want              expectation
}

type floodResult struct {
	frames int   // frames written
	bytes  int64 // bytes written
	err    error // write error that stopped the flood, if any
}

func TestFloodProtections(t *testing.T) {
	l := startL7LB(t)
	checkRawRequestRouted(t, l)
	cases := []floodCase{
		{name: "rapid_reset", flood: rapidReset, readWhileFlooding: true, want: wantRapidReset},
		{name: "continuation_flood", flood: continuationFlood, readWhileFlooding: true, want: wantContinuationFlood},
		{name: "ping_flood", flood: pingFlood, readWhileFlooding: false, want: wantPingFlood},
		{name: "settings_flood", flood: settingsFlood, readWhileFlooding: false, want: wantSettingsFlood},
		{name: "oversized_header_list", flood: oversizedHeaderList, readWhileFlooding: true, want: wantOversizedHeaderList},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			calls0, cancelled0 := l.backendCalls()
			good := startGoodClient(t, l)
			c := dialRaw(t, l)
			obs := &observer{}
			hs := time.Now()
			deadline := hs.Add(closeWithin)
			c.nc.SetReadDeadline(deadline)
			readDone := make(chan struct{})
			if tc.readWhileFlooding {
				go func() { obs.readAll(c, hs); close(readDone) }()
			}
			c.nc.SetWriteDeadline(hs.Add(floodBudget))
			res := tc.flood(t, c)
			res.bytes = c.cw.n.Load()
			floodTime := time.Since(hs)
			if !tc.readWhileFlooding {
				go func() { obs.readAll(c, hs); close(readDone) }()
			}
			<-readDone
			c.nc.Close()
			okRPCs, tail, failed, slowest := good.stop()
			calls1, cancelled1 := l.backendCalls()

			t.Logf("client wrote %d frames (%d bytes) in %s; stopped by: %v", res.frames, res.bytes, floodTime.Round(time.Millisecond), orNone(res.err))
			t.Logf("l7lb sent: %s", obs.summary())
			t.Logf("well-behaved client: %d RPCs served (%d after the attack), %d failed, slowest %s; case took %s", okRPCs, tail, len(failed), slowest.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			// 1: the well-behaved client's warm-up call.
			t.Logf("backends: %d Echo calls beyond the well-behaved client's (%d seen cancelled)", calls1-calls0-1-okRPCs-int64(len(failed)), cancelled1-cancelled0)

			if len(failed) > 0 || tail == 0 {
				t.Errorf("well-behaved client on another connection: %d served (%d after the attack), %d failed; first failures: %v", okRPCs, tail, len(failed), failed[:min(len(failed), 5)])
			}
			if slowest > goodMaxLatency {
				t.Errorf("well-behaved client on another connection: slowest RPC took %s, want at most %s", slowest, goodMaxLatency)
			}
			if !obs.goAwaySeen {
				t.Errorf("want %s; l7lb sent no GOAWAY (%s)", tc.want, obs.endDescription())
			} else if !tc.want.accepts(obs.goAwayCode) {
				t.Errorf("want %s; got GOAWAY %v (debug %q) after %s", tc.want, obs.goAwayCode, obs.goAwayDebug, obs.goAwayAt.Round(time.Millisecond))
			}
			if !obs.closed {
				t.Errorf("want %s; connection still open %s after the handshake", tc.want, closeWithin)
			}
		})
	}
}

func (e expectation) accepts(code http2.ErrCode) bool {
	for _, c := range e.goAway {
		if c == code {
			return true
		}
	}
	return false
}

func orNone(err error) any {
	if err == nil {
		return "nothing (flood completed)"
	}
	return err
}

// ---------------------------------------------------------------------------
// The floods.

const (
	rapidResets       = 20_000
	continuationBytes = 10 << 20
	pings             = 100_000
	settingsFrames    = 100_000
	// headerListFactor: the oversized header list is this many times the
	// advertised SETTINGS_MAX_HEADER_LIST_SIZE.
	headerListFactor = 4
)

// rapidReset opens streams that would each become an Echo RPC to the
// backends and cancels them at once.
func rapidReset(t *testing.T, c *rawConn) floodResult {
	block := c.requestBlock(nil)
	return writeFrames(c, rapidResets, 2, func(i int) error {
		id := uint32(2*i + 1)
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err != nil {
			return err
		}
		return c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	})
}

// continuationFlood starts a request whose header block never ends: one
// HEADERS without END_HEADERS, then CONTINUATION frames of valid HPACK
// (never-indexed literal fields), so the server has to decode them.
func continuationFlood(t *testing.T, c *rawConn) floodResult {
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.requestBlock(nil), EndStream: true}); err != nil {
		return floodResult{err: err}
	}
	chunk := junkFields(frameSize)
	chunks := (continuationBytes + len(chunk) - 1) / len(chunk)
	r := writeFrames(c, chunks, 1, func(int) error { return c.fr.WriteContinuation(1, false, chunk) })
	r.frames++ // the HEADERS
	return r
}

// pingFlood sends PINGs and never reads their ACKs.
func pingFlood(t *testing.T, c *rawConn) floodResult {
	var data [8]byte
	return writeFrames(c, pings, 1, func(i int) error {
		data[0], data[1], data[2] = byte(i>>16), byte(i>>8), byte(i)
		return c.fr.WritePing(false, data)
	})
}

// settingsFlood sends SETTINGS frames (each changing a setting, so each
// needs processing and its own ACK) and never reads the ACKs.
func settingsFlood(t *testing.T, c *rawConn) floodResult {
	return writeFrames(c, settingsFrames, 1, func(i int) error {
		return c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(65535 + i%2)})
	})
}

// oversizedHeaderList sends one request whose header list is
// headerListFactor times the SETTINGS_MAX_HEADER_LIST_SIZE l7lb advertised,
// split into HEADERS and CONTINUATION frames of frameSize.
func oversizedHeaderList(t *testing.T, c *rawConn) floodResult {
	limit, ok := c.serverSettings[http2.SettingMaxHeaderListSize]
	if !ok {
		t.Errorf("l7lb does not advertise SETTINGS_MAX_HEADER_LIST_SIZE (settings %v); using 1 MiB", c.serverSettings)
		limit = 1 << 20
	}
	size := int(limit) * headerListFactor
	if size > 64<<20 {
		t.Errorf("l7lb advertises SETTINGS_MAX_HEADER_LIST_SIZE %d; the test sends at most 64 MiB", limit)
		size = 64 << 20
	}
	// Fields of 8 KiB each; every field counts its name and value plus
	// 32 octets towards the header list size (RFC 9113 §6.5.2).
	var extra []hpack.HeaderField
	value := strings.Repeat("v", 8<<10)
	for n := 0; n < size; n += len(value) + 32 + 8 {
		extra = append(extra, hpack.HeaderField{Name: fmt.Sprintf("x-big-%04d", len(extra)), Value: value, Sensitive: true})
	}
	block := c.requestBlock(extra)
	t.Logf("advertised SETTINGS_MAX_HEADER_LIST_SIZE %d; sending a header list of about %d octets (%d bytes of HPACK)", limit, size, len(block))
	frags := fragments(block, frameSize)
	return writeFrames(c, len(frags), 1, func(i int) error {
		end := i == len(frags)-1
		if i == 0 {
			return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: frags[0], EndStream: true, EndHeaders: end})
		}
		return c.fr.WriteContinuation(1, end, frags[i])
	})
}

// writeFrames calls write n times, each writing framesPerCall frames,
// stops at the first write error, then flushes; it counts the frames of
// the calls that succeeded.
func writeFrames(c *rawConn, n, framesPerCall int, write func(i int) error) floodResult {
	var r floodResult
	for i := 0; i < n; i++ {
		if err := write(i); err != nil {
			r.err = err
			return r
		}
		r.frames += framesPerCall
	}
	r.err = c.flush()
	return r
}

// fragments splits block into pieces of at most size bytes; an empty
// block is one empty piece.
func fragments(block []byte, size int) [][]byte {
	var frags [][]byte
	for len(block) > size {
		frags = append(frags, block[:size])
		block = block[size:]
	}
	return append(frags, block)
}

// junkFields returns about n bytes of HPACK: literal header fields, never
// indexed, with new names, so the block is valid and stateless.
func junkFields(n int) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; buf.Len() < n-1100; i++ {
		enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-junk-%d", i), Value: strings.Repeat("j", 1000), Sensitive: true})
	}
	return buf.Bytes()
}

// ---------------------------------------------------------------------------
// The raw client.

type rawConn struct {
	nc             *tls.Conn
	bw             *bufio.Writer
	cw             *countingWriter
	fr             *http2.Framer
	authority      string
	serverSettings map[http2.SettingID]uint32
}

type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *rawConn) flush() error { return c.bw.Flush() }

// dialRaw connects with TLS and ALPN h2, sends the preface and an empty
// SETTINGS, reads l7lb's SETTINGS and acknowledges them.
func dialRaw(t *testing.T, l *l7lb) *rawConn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	nc, err := tls.DialWithDialer(d, "tcp", l.addr, &tls.Config{RootCAs: l.ca.Pool(), ServerName: serverName, NextProtos: []string{http2.NextProtoTLS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if p := nc.ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
		t.Fatalf("ALPN negotiated %q, want h2", p)
	}
	cw := &countingWriter{w: nc}
	bw := bufio.NewWriterSize(cw, 64<<10)
	c := &rawConn{nc: nc, bw: bw, cw: cw, authority: serverName, serverSettings: map[http2.SettingID]uint32{}}
	c.fr = http2.NewFramer(bw, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 16 << 20
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(bw, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		t.Fatalf("reading l7lb's SETTINGS: %v", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("l7lb's first frame is %v, want SETTINGS", summarize(f))
	}
	sf.ForeachSetting(func(s http2.Setting) error { c.serverSettings[s.ID] = s.Val; return nil })
	if err := c.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Time{})
	return c
}

// requestBlock is the HPACK block of an Echo Unary request, routed by l7lb
// to the backends, plus extra fields. Every field is never-indexed or in
// the static table, so the block leaves no state behind and can be reused.
func (c *rawConn) requestBlock(extra []hpack.HeaderField) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: c.authority, Sensitive: true},
		{Name: ":path", Value: echo.UnaryMethod, Sensitive: true},
		{Name: "content-type", Value: "application/grpc", Sensitive: true},
		{Name: "te", Value: "trailers", Sensitive: true},
	}
	for _, f := range append(fields, extra...) {
		enc.WriteField(f)
	}
	return buf.Bytes()
}

// checkRawRequestRouted makes sure the raw client's request block is one
// l7lb routes to the backends (so a rapid reset asks for real work): one
// Echo Unary call with an empty message must come back with grpc-status 0.
func checkRawRequestRouted(t *testing.T, l *l7lb) {
	t.Helper()
	c := dialRaw(t, l)
	defer c.nc.Close()
	var adv []string
	for _, id := range []http2.SettingID{http2.SettingHeaderTableSize, http2.SettingEnablePush, http2.SettingMaxConcurrentStreams, http2.SettingInitialWindowSize, http2.SettingMaxFrameSize, http2.SettingMaxHeaderListSize} {
		if v, ok := c.serverSettings[id]; ok {
			adv = append(adv, fmt.Sprintf("%v=%d", id, v))
		}
	}
	t.Logf("l7lb advertises %s", strings.Join(adv, ", "))
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.requestBlock(nil), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// A gRPC message: not compressed, length 0 (an empty BytesValue).
	if err := c.fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("raw Echo call: %v after %v", err, seen)
		}
		seen = append(seen, summarize(f))
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamEnded() {
			grpcStatus := ""
			for _, hf := range h.RegularFields() {
				if hf.Name == "grpc-status" {
					grpcStatus = hf.Value
				}
			}
			if h.PseudoValue("status") != "" && h.PseudoValue("status") != "200" || grpcStatus != "0" {
				t.Fatalf("raw Echo call through l7lb: want grpc-status 0, got %v", seen)
			}
			return
		}
		if r, ok := f.(*http2.RSTStreamFrame); ok {
			t.Fatalf("raw Echo call through l7lb reset: %v", summarize(r))
		}
	}
}

// observer records what l7lb sent on the attacking connection.
type observer struct {
	counts      map[http2.FrameType]int
	first, last []string
	goAwaySeen  bool
	goAwayCode  http2.ErrCode
	goAwayDebug string
	goAwayAt    time.Duration
	closed      bool // the connection ended (EOF, reset) before the deadline
	endErr      error
	endAt       time.Duration
}

func (o *observer) readAll(c *rawConn, start time.Time) {
	o.counts = map[http2.FrameType]int{}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			o.endErr, o.endAt = err, time.Since(start)
			var ne net.Error
			o.closed = !(errors.As(err, &ne) && ne.Timeout())
			return
		}
		o.counts[f.Header().Type]++
		s := summarize(f)
		if len(o.first) < 4 {
			o.first = append(o.first, s)
		} else {
			o.last = append(o.last, s)
			if len(o.last) > 4 {
				o.last = o.last[1:]
			}
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok && !o.goAwaySeen {
			o.goAwaySeen = true
			o.goAwayCode = ga.ErrCode
			o.goAwayDebug = string(ga.DebugData())
			o.goAwayAt = time.Since(start)
		}
	}
}

func (o *observer) endDescription() string {
	if o.closed {
		return fmt.Sprintf("connection ended after %s: %v", o.endAt.Round(time.Millisecond), o.endErr)
	}
	return fmt.Sprintf("connection still open after %s", o.endAt.Round(time.Millisecond))
}

func (o *observer) summary() string {
	var counts []string
	for _, ft := range []http2.FrameType{http2.FrameSettings, http2.FramePing, http2.FrameWindowUpdate, http2.FrameHeaders, http2.FrameContinuation, http2.FrameData, http2.FrameRSTStream, http2.FrameGoAway} {
		if n := o.counts[ft]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %v", n, ft))
		}
	}
	s := strings.Join(counts, ", ")
	if s == "" {
		s = "no frames"
	}
	s += "; first: " + strings.Join(o.first, " | ")
	if len(o.last) > 0 {
		s += "; last: " + strings.Join(o.last, " | ")
	}
	if o.goAwaySeen {
		s += fmt.Sprintf("; GOAWAY %v (debug %q) at %s", o.goAwayCode, o.goAwayDebug, o.goAwayAt.Round(time.Millisecond))
	}
	return s + "; " + o.endDescription()
}

func summarize(f http2.Frame) string {
	switch f := f.(type) {
	case *http2.GoAwayFrame:
		return fmt.Sprintf("GOAWAY last=%d %v %q", f.LastStreamID, f.ErrCode, f.DebugData())
	case *http2.RSTStreamFrame:
		return fmt.Sprintf("RST_STREAM stream=%d %v", f.StreamID, f.ErrCode)
	case *http2.MetaHeadersFrame:
		var st string
		for _, hf := range f.Fields {
			if hf.Name == ":status" || hf.Name == "grpc-status" || hf.Name == "grpc-message" {
				st += " " + hf.Name + "=" + hf.Value
			}
		}
		return fmt.Sprintf("HEADERS stream=%d%s end_stream=%v", f.StreamID, st, f.StreamEnded())
	case *http2.SettingsFrame:
		if f.IsAck() {
			return "SETTINGS ACK"
		}
		var s []string
		f.ForeachSetting(func(x http2.Setting) error { s = append(s, x.String()); return nil })
		return "SETTINGS " + strings.Join(s, ",")
	case *http2.PingFrame:
		if f.IsAck() {
			return "PING ACK"
		}
		return "PING"
	case *http2.WindowUpdateFrame:
		return fmt.Sprintf("WINDOW_UPDATE stream=%d +%d", f.StreamID, f.Increment)
	case *http2.DataFrame:
		return fmt.Sprintf("DATA stream=%d len=%d", f.StreamID, len(f.Data()))
	default:
		return fmt.Sprintf("%v stream=%d len=%d", f.Header().Type, f.Header().StreamID, f.Header().Length)
	}
}

// ---------------------------------------------------------------------------
// The well-behaved client.

type goodClient struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	mu     sync.Mutex
	failed []error
	slow   time.Duration // the slowest RPC
}

// startGoodClient runs Echo Unary RPCs from 4 goroutines over one gRPC
// connection of its own until stop.
func startGoodClient(t *testing.T, l *l7lb) *goodClient {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: l.ca.Pool(), ServerName: serverName})
	cc, err := grpc.NewClient(l.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	cli := echo.NewClient(cc)
	// One RPC before the flood, so the connection is up.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Unary(ctx, []byte("warm-up")); err != nil {
		t.Fatalf("well-behaved client before the flood: %v", err)
	}
	g := &goodClient{}
	run, stop := context.WithCancel(context.Background())
	g.cancel = stop
	for w := 0; w < 4; w++ {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			payload := []byte("good-" + strconv.Itoa(w))
			for run.Err() == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				t0 := time.Now()
				got, err := cli.Unary(ctx, payload)
				d := time.Since(t0)
				cancel()
				g.mu.Lock()
				g.slow = max(g.slow, d)
				g.mu.Unlock()
				switch {
				case err != nil:
					g.mu.Lock()
					g.failed = append(g.failed, err)
					g.mu.Unlock()
				case !bytes.Equal(got, payload):
					g.mu.Lock()
					g.failed = append(g.failed, fmt.Errorf("echo returned %q, want %q", got, payload))
					g.mu.Unlock()
				default:
					g.ok.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return g
}

// stop lets the client run for goodClientTail more, so it is seen served
// after the attacking connection is gone, then stops it. It returns the
// RPCs served, those served in the tail, the failures and the slowest RPC.
func (g *goodClient) stop() (served, inTail int64, failed []error, slowest time.Duration) {
	before := g.ok.Load()
	time.Sleep(goodClientTail)
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ok.Load(), g.ok.Load() - before, g.failed, g.slow
}

// ---------------------------------------------------------------------------
// l7lb in-process.

type l7lb struct {
	addr    string
	ca      *pki.CA
	cluster *fakemilvus.Cluster
}

// backendCalls is the number of Echo RPCs that reached a backend handler
// and how many of those the backends saw cancelled.
func (l *l7lb) backendCalls() (calls, cancelled int64) {
	for _, r := range l.cluster.Replicas() {
		calls += r.Echo().Calls()
		cancelled += r.Echo().Cancelled()
	}
	return calls, cancelled
}

func startL7LB(t *testing.T) *l7lb {
	t.Helper()
	lb, cl := lbtest.StartWithCluster(t, fakemilvus.Options{}, lbtest.Options{Ingress: floodIngress, CAName: "flood CA"})
	a := lb.Addr(443)
	if a == "" {
		t.Fatalf("l7lb has no HTTPS listener: %v", lb.Addrs)
	}
	return &l7lb{addr: a, ca: lb.CA, cluster: cl}
}
