package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2conn is a raw HTTP/2 client connection over TLS (with SNI), every
// frame under the test's control: it is how the misbehaving clients
// talk to l7lb.
type h2conn struct {
	c     *tls.Conn
	local string // as l7lb sees the client (runtime.Flow's Client)
	fr    *http2.Framer

	wmu  sync.Mutex // frame writes and the HPACK encoder
	enc  *hpack.Encoder
	hbuf bytes.Buffer

	mu       sync.Mutex
	cond     *sync.Cond
	nextID   uint32
	streams  map[uint32]*h2stream
	settings bool // the server's SETTINGS arrived
	// What l7lb advertised.
	peerMaxStreams uint32
	peerInitWin    int64
	peerMaxFrame   int
	// Send side (uploads): the windows l7lb granted.
	sendConn int64
	// Receive side policy.
	credit    creditPolicy
	readPause time.Duration
	goaway    bool
	goawayErr http2.ErrCode
	readErr   error
	readDone  chan struct{}
	recvConn  int64 // response bytes received, total
	recvOwed  int64 // connection credit not yet returned
}

// creditPolicy says what the client does with response window.
type creditPolicy int

const (
	creditAtOnce creditPolicy = iota // WINDOW_UPDATE for every DATA frame read
	creditNever                      // never grants window back
)

type h2stream struct {
	id       uint32
	sendWin  int64
	status   string // :status
	grpc     string // grpc-status, once the trailers came
	gotHdr   bool
	ended    bool // END_STREAM from l7lb, or a reset
	rst      bool
	rstCode  http2.ErrCode
	recv     int64
	sentEnd  bool
	iReset   bool
	recvOwed int64
}

type h2opts struct {
	// initWin is the SETTINGS_INITIAL_WINDOW_SIZE sent (nil: default).
	initWin *uint32
	// connWin is the WINDOW_UPDATE on stream 0 sent after SETTINGS.
	connWin uint32
	credit  creditPolicy
	// noRead: never read the socket at all.
	noRead bool
	// readPause: sleep this long after each frame read (a slow reader).
	readPause time.Duration
	// deadline bounds every read and write on the connection.
	deadline time.Time
}

func u32(v uint32) *uint32 { return &v }

// dialH2 opens a TLS connection with ALPN h2 and the server name, sends
// the preface and settings, and (unless noRead) waits for l7lb's SETTINGS.
func dialH2(ctx context.Context, addr string, pool *x509.CertPool, o h2opts) (*h2conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: serverName, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		tc.Close()
		return nil, fmt.Errorf("ALPN chose %q, want h2", p)
	}
	dl := o.deadline
	if dl.IsZero() {
		dl = time.Now().Add(30 * time.Second)
	}
	tc.SetDeadline(dl)
	h := &h2conn{c: tc, local: tc.LocalAddr().String(), nextID: 1, streams: map[uint32]*h2stream{},
		peerMaxStreams: 100, peerInitWin: 65535, peerMaxFrame: 16384, sendConn: 65535,
		credit: o.credit, readPause: o.readPause, readDone: make(chan struct{})}
	h.cond = sync.NewCond(&h.mu)
	h.fr = http2.NewFramer(tc, bufio.NewReaderSize(tc, 32<<10))
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.MaxHeaderListSize = 1 << 20
	h.enc = hpack.NewEncoder(&h.hbuf)

	var settings []http2.Setting
	if o.initWin != nil {
		settings = append(settings, http2.Setting{ID: http2.SettingInitialWindowSize, Val: *o.initWin})
	}
	h.wmu.Lock()
	_, err = tc.Write([]byte(http2.ClientPreface))
	if err == nil {
		err = h.fr.WriteSettings(settings...)
	}
	if err == nil && o.connWin > 0 {
		err = h.fr.WriteWindowUpdate(0, o.connWin)
	}
	h.wmu.Unlock()
	if err != nil {
		tc.Close()
		return nil, err
	}
	if o.noRead {
		close(h.readDone)
		return h, nil
	}
	go h.readLoop()
	if err := h.waitFor(ctx, 3*time.Second, func() bool { return h.settings || h.readErr != nil }); err != nil {
		h.close()
		return nil, fmt.Errorf("no SETTINGS from l7lb: %w", err)
	}
	return h, nil
}

func (h *h2conn) close() {
	h.c.Close()
	<-h.readDone
}

// waitFor waits (bounded) until cond holds; under no lock.
func (h *h2conn) waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	t := time.AfterFunc(d, func() { h.mu.Lock(); h.cond.Broadcast(); h.mu.Unlock() })
	defer t.Stop()
	stop := context.AfterFunc(ctx, func() { h.mu.Lock(); h.cond.Broadcast(); h.mu.Unlock() })
	defer stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.cond.Wait()
	}
	return nil
}

func (h *h2conn) readLoop() {
	defer close(h.readDone)
	var err error
	defer func() {
		h.mu.Lock()
		h.readErr = err
		for _, st := range h.streams {
			st.ended = true
		}
		h.cond.Broadcast()
		h.mu.Unlock()
	}()
	for {
		var f http2.Frame
		f, err = h.fr.ReadFrame()
		if err != nil {
			return
		}
		if err = h.handle(f); err != nil {
			return
		}
		if h.readPause > 0 {
			time.Sleep(h.readPause)
		}
	}
}

func (h *h2conn) handle(f http2.Frame) error {
	var ack bool
	var ping *[8]byte
	var creditConn, creditStream uint32
	var creditID uint32
	h.mu.Lock()
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			f.ForeachSetting(func(s http2.Setting) error {
				switch s.ID {
				case http2.SettingMaxConcurrentStreams:
					h.peerMaxStreams = s.Val
				case http2.SettingInitialWindowSize:
					delta := int64(s.Val) - h.peerInitWin
					h.peerInitWin = int64(s.Val)
					for _, st := range h.streams {
						st.sendWin += delta
					}
				case http2.SettingMaxFrameSize:
					h.peerMaxFrame = int(s.Val)
				}
				return nil
			})
			h.settings = true
			ack = true
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			d := f.Data
			ping = &d
		}
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			h.sendConn += int64(f.Increment)
		} else if st := h.streams[f.StreamID]; st != nil {
			st.sendWin += int64(f.Increment)
		}
	case *http2.GoAwayFrame:
		h.goaway, h.goawayErr = true, f.ErrCode
	case *http2.RSTStreamFrame:
		if st := h.streams[f.StreamID]; st != nil && !st.rst {
			// The first reset is the one that counts (a later one
			// answers frames the client sent on the closed stream).
			st.rst, st.rstCode, st.ended = true, f.ErrCode, true
		}
	case *http2.MetaHeadersFrame:
		if st := h.streams[f.StreamID]; st != nil {
			for _, hf := range f.Fields {
				switch hf.Name {
				case ":status":
					st.status = hf.Value
				case "grpc-status":
					st.grpc = hf.Value
				}
			}
			st.gotHdr = true
			if f.StreamEnded() {
				st.ended = true
			}
		}
	case *http2.DataFrame:
		n := int64(f.Length)
		h.recvConn += n
		st := h.streams[f.StreamID]
		if st != nil {
			st.recv += int64(len(f.Data()))
			if f.StreamEnded() {
				st.ended = true
			}
		}
		if h.credit == creditAtOnce && n > 0 {
			creditConn = uint32(n)
			if st != nil && !st.ended {
				creditStream, creditID = uint32(n), st.id
			}
		}
	}
	h.cond.Broadcast()
	h.mu.Unlock()
	if !ack && ping == nil && creditConn == 0 {
		return nil
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	var err error
	if ack {
		err = h.fr.WriteSettingsAck()
	}
	if ping != nil && err == nil {
		err = h.fr.WritePing(true, *ping)
	}
	if creditConn > 0 && err == nil {
		err = h.fr.WriteWindowUpdate(0, creditConn)
	}
	if creditStream > 0 && err == nil {
		err = h.fr.WriteWindowUpdate(creditID, creditStream)
	}
	return err
}

// request describes a gRPC request's headers.
type request struct {
	path    string
	timeout time.Duration // grpc-timeout (0: none)
	md      [][2]string
	end     bool // END_STREAM on the HEADERS (no body at all)
}

// open starts a stream; it does not wait for concurrency room.
func (h *h2conn) open(r request) (*h2stream, error) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.mu.Lock()
	id := h.nextID
	h.nextID += 2
	st := &h2stream{id: id, sendWin: h.peerInitWin}
	h.streams[id] = st
	h.mu.Unlock()
	h.hbuf.Reset()
	fields := [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", serverName}, {":path", r.path},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"user-agent", "l7lb-chaos/raw"}}
	if r.timeout > 0 {
		fields = append(fields, [2]string{"grpc-timeout", strconv.FormatInt(max(r.timeout.Milliseconds(), 1), 10) + "m"})
	}
	fields = append(fields, r.md...)
	for _, f := range fields {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.hbuf.Bytes(), EndStream: r.end, EndHeaders: true}); err != nil {
		return nil, err
	}
	st.sentEnd = r.end
	return st, nil
}

// send writes request data within l7lb's windows, waiting (up to wait)
// for window; it returns how much went out.
func (h *h2conn) send(ctx context.Context, st *h2stream, p []byte, end bool, wait time.Duration) (int, error) {
	sent := 0
	for len(p) > 0 || end {
		var n int
		if err := h.waitFor(ctx, wait, func() bool {
			if st.ended || h.readErr != nil {
				return true
			}
			n = int(min(int64(len(p)), st.sendWin, h.sendConn, int64(h.peerMaxFrame)))
			return n > 0 || len(p) == 0
		}); err != nil {
			return sent, fmt.Errorf("no window from l7lb for %d more bytes (stream %d): %w", len(p), st.id, err)
		}
		h.mu.Lock()
		if st.ended || h.readErr != nil {
			h.mu.Unlock()
			return sent, fmt.Errorf("stream %d ended while sending", st.id)
		}
		n = int(max(0, min(int64(len(p)), st.sendWin, h.sendConn, int64(h.peerMaxFrame))))
		st.sendWin -= int64(n)
		h.sendConn -= int64(n)
		h.mu.Unlock()
		fin := end && n == len(p)
		h.wmu.Lock()
		err := h.fr.WriteData(st.id, fin, p[:n])
		h.wmu.Unlock()
		if err != nil {
			return sent, err
		}
		sent += n
		p = p[n:]
		if fin {
			st.sentEnd = true
			return sent, nil
		}
	}
	return sent, nil
}

func (h *h2conn) rst(st *h2stream, code http2.ErrCode) error {
	h.mu.Lock()
	st.iReset = true
	st.ended = true
	h.mu.Unlock()
	h.wmu.Lock()
	defer h.wmu.Unlock()
	return h.fr.WriteRSTStream(st.id, code)
}

// grant gives l7lb n more bytes of response window on st and the
// connection.
func (h *h2conn) grant(st *h2stream, n uint32) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if err := h.fr.WriteWindowUpdate(0, n); err != nil {
		return err
	}
	return h.fr.WriteWindowUpdate(st.id, n)
}

// writeRaw writes bytes as they are (a partial frame, say).
func (h *h2conn) writeRaw(p []byte) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_, err := h.c.Write(p)
	return err
}

func (h *h2conn) snapshot(st *h2stream) h2stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *st
}

func (h *h2conn) sendWindow() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sendConn
}

func (h *h2conn) openStreams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, st := range h.streams {
		if !st.ended {
			n++
		}
	}
	return n
}

func (h *h2conn) alive() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.readErr == nil && !h.goaway
}

// echo request helpers

func unaryReq(md ...[2]string) request {
	return request{path: "/l7lb.test.Echo/Unary", md: md}
}

// streamReplies asks the echo ServerStream for count messages of size.
func streamReplies(count, size int, md ...[2]string) request {
	return request{path: "/l7lb.test.Echo/ServerStream", md: append([][2]string{
		{"x-reply-count", strconv.Itoa(count)}, {"x-reply-size", strconv.Itoa(size)}}, md...)}
}

func hold(d time.Duration) [2]string {
	return [2]string{"x-hold-ms", strconv.FormatInt(d.Milliseconds(), 10)}
}
