package main

// A raw HTTP/2 client for the abuse scenarios: golang.org/x/net/http2's
// Framer over TLS (ALPN h2), so that the client can do what grpc-go never
// does — advertise a zero stream window, reset streams it asked large
// replies on, or grant the largest windows and then stop reading.

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const maxWindow = 1<<31 - 1

// rawConn is one TLS connection speaking HTTP/2 frame by frame. Writes are
// serialized by mu; reads happen on at most one goroutine.
type rawConn struct {
	conn net.Conn
	fr   *http2.Framer
	mu   sync.Mutex // guards writes: fr's write side, enc, hbuf, next
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	next uint32 // next client stream id
}

// dialRaw connects to t over TLS with ALPN h2, sends the client preface and
// settings (and, when connWindow > 65535, a connection WINDOW_UPDATE up to
// it), then reads frames until the server's SETTINGS arrives and
// acknowledges it. Reading is then up to the caller. Everything is bounded
// by timeout.
func dialRaw(t Target, settings []http2.Setting, connWindow uint32, timeout time.Duration) (*rawConn, error) {
	d := net.Dialer{Timeout: timeout}
	tc, err := tls.DialWithDialer(&d, "tcp", t.Addr, &tls.Config{
		RootCAs: t.Roots, ServerName: t.ServerName, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, err
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		tc.Close()
		return nil, fmt.Errorf("ALPN negotiated %q, want h2", p)
	}
	c := &rawConn{conn: tc, next: 1}
	c.fr = http2.NewFramer(tc, tc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(65536, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.enc = hpack.NewEncoder(&c.hbuf)
	tc.SetDeadline(time.Now().Add(timeout))
	defer tc.SetDeadline(time.Time{})
	if _, err := tc.Write([]byte(http2.ClientPreface)); err != nil {
		tc.Close()
		return nil, err
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		tc.Close()
		return nil, err
	}
	if connWindow > 65535 {
		if err := c.fr.WriteWindowUpdate(0, connWindow-65535); err != nil {
			tc.Close()
			return nil, err
		}
	}
	for i := 0; i < 64; i++ {
		f, err := c.fr.ReadFrame()
		if err != nil {
			tc.Close()
			return nil, fmt.Errorf("waiting for the server's SETTINGS: %w", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			if err := c.fr.WriteSettingsAck(); err != nil {
				tc.Close()
				return nil, err
			}
			return c, nil
		}
	}
	tc.Close()
	return nil, errors.New("no SETTINGS from the server in its first 64 frames")
}

// openUnary starts a unary gRPC call on a new stream: HEADERS asking the
// backend for a reply of replySize bytes, then one DATA frame with a
// reqSize-byte message and END_STREAM. It returns the stream id.
func (c *rawConn) openUnary(authority string, reqSize, replySize int) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.next
	c.next += 2
	c.hbuf.Reset()
	for _, hf := range [][2]string{
		{":method", "POST"}, {":scheme", "https"}, {":path", methodUnary}, {":authority", authority},
		{"content-type", "application/grpc"}, {"te", "trailers"},
		{mdMode, "unary"}, {mdReplySize, strconv.Itoa(replySize)},
	} {
		c.enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetWriteDeadline(time.Time{})
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true}); err != nil {
		return id, err
	}
	msg := make([]byte, 5+reqSize) // gRPC message: uncompressed, 4-byte length, zeros
	binary.BigEndian.PutUint32(msg[1:5], uint32(reqSize))
	return id, c.fr.WriteData(id, true, msg)
}

func (c *rawConn) reset(id uint32, code http2.ErrCode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetWriteDeadline(time.Time{})
	return c.fr.WriteRSTStream(id, code)
}

// close says goodbye (best effort) and closes the socket.
func (c *rawConn) close() {
	c.mu.Lock()
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	c.mu.Unlock()
	c.conn.Close()
}

// rawReadStats is what the reading side of a raw connection saw.
type rawReadStats struct {
	mu        sync.Mutex
	headers   map[uint32]bool // streams with response HEADERS; make it before readLoop
	Headers   int             `json:"response_headers"`
	DataBytes int64           `json:"data_bytes"` // DATA received (a zero window should keep this 0)
	ServerRST int             `json:"server_rst_stream"`
	GoAway    string          `json:"goaway,omitempty"`
	ReadErr   string          `json:"read_error,omitempty"`
}

func (s *rawReadStats) hasHeaders(id uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[id]
}

// readLoop reads frames until the connection fails (the owner ends it by
// closing the connection; closing is set before that) or maxFrames have been
// read, answering PINGs and SETTINGS and never sending a WINDOW_UPDATE.
func (c *rawConn) readLoop(closing *atomic.Bool, st *rawReadStats, maxFrames int) {
	for i := 0; i < maxFrames; i++ {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if !closing.Load() {
				st.mu.Lock()
				st.ReadErr = err.Error()
				st.mu.Unlock()
			}
			return
		}
		st.mu.Lock()
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if !st.headers[f.StreamID] {
				st.headers[f.StreamID] = true
				st.Headers++
			}
		case *http2.DataFrame:
			st.DataBytes += int64(len(f.Data()))
		case *http2.RSTStreamFrame:
			st.ServerRST++
		case *http2.GoAwayFrame:
			st.GoAway = f.ErrCode.String()
		case *http2.PingFrame:
			if !f.IsAck() {
				c.mu.Lock()
				c.fr.WritePing(true, f.Data)
				c.mu.Unlock()
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.mu.Lock()
				c.fr.WriteSettingsAck()
				c.mu.Unlock()
			}
		}
		st.mu.Unlock()
	}
}
