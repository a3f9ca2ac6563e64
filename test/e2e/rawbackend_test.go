package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l7lb/l7lb/internal/config"
)

// resetBackend is a minimal h2c server that answers every request stream
// with RST_STREAM(code) before any response: how a backend refuses or
// aborts a stream. It lets tests see what l7lb makes of such resets.
type resetBackend struct {
	ln   net.Listener
	code http2.ErrCode
	wg   sync.WaitGroup
}

func startResetBackend(t *testing.T, code http2.ErrCode) *resetBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &resetBackend{ln: ln, code: code}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() { defer b.wg.Done(); b.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func (b *resetBackend) endpoint() config.Endpoint {
	host, port, _ := net.SplitHostPort(b.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return config.Endpoint{Address: host, Port: p, Ready: true}
}

func (b *resetBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || !bytes.Equal(preface, []byte(http2.ClientPreface)) {
		return
	}
	var wmu sync.Mutex
	fr := http2.NewFramer(c, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	wmu.Lock()
	fr.WriteSettings()
	wmu.Unlock()
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
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			fr.WriteRSTStream(f.StreamID, b.code)
		}
	}
}
