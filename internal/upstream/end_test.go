package upstream

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// frameLog is what a target saw on one stream, in order.
type frameLog struct {
	kind string // "HEADERS" or "DATA"
	n    int
	end  bool
}

// endingTarget grants no stream window at first (SETTINGS_INITIAL_WINDOW_SIZE
// 0), logs every HEADERS and DATA frame of stream 1, and opens the window
// by grant bytes once it is told to. It never answers. acked is closed
// when l7lb acknowledged the SETTINGS: from then on l7lb knows the window
// is 0 (before, it may send within the protocol's default 65535).
func endingTarget(t *testing.T, grant <-chan uint32, seen chan<- frameLog, acked chan<- struct{}) string {
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
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		go func() {
			for n := range grant {
				fr.WriteWindowUpdate(1, n) // the reader below only reads
			}
		}()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if f.IsAck() {
					close(acked)
				} else {
					fr.WriteSettingsAck()
				}
			case *http2.HeadersFrame:
				seen <- frameLog{"HEADERS", 0, f.StreamEnded()}
			case *http2.DataFrame:
				seen <- frameLog{"DATA", len(f.Data()), f.StreamEnded()}
			}
		}
	}()
	return ln.Addr().String()
}

// The end of a request (what h2proxy sends for a client's request
// trailers, or an empty END_STREAM) waits behind request bytes the
// target's window holds back: the target sees HEADERS once, then every
// byte, then END_STREAM, and never a second HEADERS (which a grpc-go
// target takes as a connection error). With nothing pending, the end goes
// at once, even into a zero window (an empty DATA frame takes none).
func TestRequestEndWaitsBehindPendingData(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    int
		wantEnd int // bytes the target must have seen before END_STREAM
	}{
		{"bytes pending for window", 3000, 3000},
		{"nothing pending", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			grant := make(chan uint32, 1)
			seen := make(chan frameLog, 64)
			defer close(grant)
			acked := make(chan struct{})
			cs := NewConns(endingTarget(t, grant, seen, acked), false, nil)
			defer cs.Abort()
			up := new(Stream)
			if err := cs.Open(up, newSink(), encodeGRPC, false, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case <-acked:
			case <-time.After(10 * time.Second):
				t.Fatal("l7lb never acknowledged the target's SETTINGS")
			}
			if tc.body > 0 {
				up.Data(make([]byte, tc.body), false, nil) // held: the window is 0
			}
			up.Data(nil, true, nil)
			if tc.body > 0 {
				// Nothing but HEADERS may arrive while the window is shut.
				select {
				case f := <-seen:
					if f.kind != "HEADERS" || f.end {
						t.Fatalf("first frame %+v, want HEADERS without END_STREAM", f)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no HEADERS")
				}
				select {
				case f := <-seen:
					t.Fatalf("%+v before the target granted any window", f)
				case <-time.After(100 * time.Millisecond):
				}
				grant <- uint32(tc.body)
			}
			got, headers := 0, 0
			if tc.body > 0 {
				headers = 1
			}
			for deadline := time.After(10 * time.Second); ; {
				select {
				case f := <-seen:
					switch f.kind {
					case "HEADERS":
						headers++
						if headers > 1 || f.end {
							t.Fatalf("HEADERS %+v after the request's HEADERS", f)
						}
					case "DATA":
						got += f.n
					}
					if f.end {
						if got != tc.wantEnd {
							t.Fatalf("END_STREAM after %d bytes, want %d", got, tc.wantEnd)
						}
						return
					}
				case <-deadline:
					t.Fatalf("no END_STREAM; saw %d bytes", got)
				}
			}
		})
	}
}
