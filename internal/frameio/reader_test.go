package frameio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawFrame is one frame's bytes, written by hand so that a test can send
// what x/net's writer refuses to (bad padding, stream 0).
func rawFrame(typ http2.FrameType, flags http2.Flags, stream uint32, payload []byte) []byte {
	b := make([]byte, 9, 9+len(payload))
	b[0], b[1], b[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	b[3], b[4] = byte(typ), byte(flags)
	binary.BigEndian.PutUint32(b[5:], stream)
	return append(b, payload...)
}

func TestReaderNext(t *testing.T) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: "POST"})
	enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/milvus.proto.milvus.MilvusService/Search"})
	block := bytes.Clone(hb.Bytes())
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	prio := []byte{0x80, 0, 0, 3, 15} // exclusive, depends on 3, weight 15
	const (
		endHeaders = http2.FlagHeadersEndHeaders
		endStream  = http2.FlagHeadersEndStream
		padded     = http2.FlagHeadersPadded
		hasPrio    = http2.FlagHeadersPriority
	)

	type read struct {
		kind   Kind
		frame  http2.FrameType // OtherFrame's type
		stream uint32
		inc    uint32 // a WINDOW_UPDATE's
		ping   *Ping
		end    bool
		prio   *http2.PriorityParam
		empty  bool          // a block with no fields
		code   http2.ErrCode // connection error expected (0: none)
		scode  http2.ErrCode // stream error expected (0: none)
		err    error         // other error expected
	}
	for _, tc := range []struct {
		name  string
		wire  []byte
		reads []read
	}{
		{"headers in one frame", rawFrame(http2.FrameHeaders, endHeaders|endStream, 1, block),
			[]read{{kind: HeaderBlock, stream: 1, end: true}}},
		{"padded", rawFrame(http2.FrameHeaders, endHeaders|padded, 3, cat([]byte{4}, block, make([]byte, 4))),
			[]read{{kind: HeaderBlock, stream: 3}}},
		{"priority", rawFrame(http2.FrameHeaders, endHeaders|hasPrio, 5, cat(prio, block)),
			[]read{{kind: HeaderBlock, stream: 5, prio: &http2.PriorityParam{StreamDep: 3, Exclusive: true, Weight: 15}}}},
		{"padded and priority", rawFrame(http2.FrameHeaders, endHeaders|padded|hasPrio, 5, cat([]byte{2}, prio, block, []byte{0, 0})),
			[]read{{kind: HeaderBlock, stream: 5, prio: &http2.PriorityParam{StreamDep: 3, Exclusive: true, Weight: 15}}}},
		{"padding fills the frame", rawFrame(http2.FrameHeaders, endHeaders|padded, 1, cat([]byte{3}, []byte{0, 0, 0})),
			[]read{{kind: HeaderBlock, stream: 1, empty: true}}},
		{"continued", cat(
			rawFrame(http2.FrameHeaders, endStream, 1, block[:3]),
			rawFrame(http2.FrameContinuation, 0, 1, block[3:5]),
			rawFrame(http2.FrameContinuation, endHeaders, 1, block[5:])),
			[]read{{kind: HeaderFragment}, {kind: HeaderFragment}, {kind: HeaderBlock, stream: 1, end: true}}},
		{"other frames pass through", cat(
			rawFrame(http2.FrameRSTStream, 0, 3, []byte{0, 0, 0, 8}),
			rawFrame(http2.FrameHeaders, endHeaders, 1, block),
			rawFrame(http2.FrameWindowUpdate, 0, 1, []byte{0, 0, 1, 0})),
			[]read{{frame: http2.FrameRSTStream, stream: 3}, {kind: HeaderBlock, stream: 1}, {kind: WindowUpdateFrame, stream: 1, inc: 256}}},
		{"PING and its ack", cat(
			rawFrame(http2.FramePing, 0, 0, []byte("12345678")),
			rawFrame(http2.FramePing, http2.FlagPingAck, 0, []byte("abcdefgh"))),
			[]read{{kind: PingFrame, ping: &Ping{Data: [8]byte([]byte("12345678"))}}, {kind: PingFrame, ping: &Ping{Ack: true, Data: [8]byte([]byte("abcdefgh"))}}}},
		{"PING on a stream", rawFrame(http2.FramePing, 0, 1, make([]byte, 8)),
			[]read{{code: http2.ErrCodeProtocol}}},
		{"PING of 7 bytes", rawFrame(http2.FramePing, 0, 0, make([]byte, 7)),
			[]read{{code: http2.ErrCodeFrameSize}}},
		{"WINDOW_UPDATE, reserved bit set", rawFrame(http2.FrameWindowUpdate, 0, 0, []byte{0x80, 0, 0, 1}),
			[]read{{kind: WindowUpdateFrame, inc: 1}}},
		{"WINDOW_UPDATE of 0 on a stream", rawFrame(http2.FrameWindowUpdate, 0, 3, []byte{0, 0, 0, 0}),
			[]read{{scode: http2.ErrCodeProtocol, stream: 3}}},
		{"WINDOW_UPDATE of 0 on the connection", rawFrame(http2.FrameWindowUpdate, 0, 0, []byte{0, 0, 0, 0}),
			[]read{{code: http2.ErrCodeProtocol}}},
		{"WINDOW_UPDATE of 5 bytes", rawFrame(http2.FrameWindowUpdate, 0, 0, []byte{0, 0, 0, 1, 0}),
			[]read{{code: http2.ErrCodeFrameSize}}},
		{"padding longer than the payload", rawFrame(http2.FrameHeaders, endHeaders|padded, 1, cat([]byte{5}, []byte{0, 0, 0, 0})),
			[]read{{code: http2.ErrCodeProtocol}}},
		{"padding eats the priority", rawFrame(http2.FrameHeaders, endHeaders|padded|hasPrio, 1, cat([]byte{3}, prio)),
			[]read{{code: http2.ErrCodeProtocol}}},
		{"too short for its priority", rawFrame(http2.FrameHeaders, endHeaders|hasPrio, 1, prio[:4]),
			[]read{{code: http2.ErrCodeFrameSize}}},
		{"empty padded", rawFrame(http2.FrameHeaders, endHeaders|padded, 1, nil),
			[]read{{code: http2.ErrCodeFrameSize}}},
		{"stream 0", rawFrame(http2.FrameHeaders, endHeaders, 0, block),
			[]read{{code: http2.ErrCodeProtocol}}},
		{"CONTINUATION without HEADERS", rawFrame(http2.FrameContinuation, endHeaders, 1, block),
			[]read{{code: http2.ErrCodeProtocol}}},
		{"CONTINUATION for another stream", cat(
			rawFrame(http2.FrameHeaders, 0, 1, block[:3]),
			rawFrame(http2.FrameContinuation, endHeaders, 3, block[3:])),
			[]read{{kind: HeaderFragment}, {code: http2.ErrCodeProtocol}}},
		{"DATA inside a header block", cat(
			rawFrame(http2.FrameHeaders, 0, 1, block[:3]),
			rawFrame(http2.FrameData, 0, 1, []byte("x"))),
			[]read{{kind: HeaderFragment}, {code: http2.ErrCodeProtocol}}},
		{"HPACK garbage", rawFrame(http2.FrameHeaders, endHeaders, 1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
			[]read{{code: http2.ErrCodeCompression}}},
		{"larger than the frame limit", rawFrame(http2.FrameHeaders, endHeaders, 1, make([]byte, 16385)),
			[]read{{err: http2.ErrFrameTooLarge}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.wire), 16384, 64<<10)
			for i, want := range tc.reads {
				kind, f, err := r.Next()
				var ce http2.ConnectionError
				var se http2.StreamError
				switch {
				case want.code != 0:
					if !errors.As(err, &ce) || http2.ErrCode(ce) != want.code {
						t.Fatalf("read %d: error %v, want a connection error %v", i, err, want.code)
					}
					return
				case want.scode != 0:
					if !errors.As(err, &se) || se.Code != want.scode || se.StreamID != want.stream {
						t.Fatalf("read %d: error %v, want a stream error %v on stream %d", i, err, want.scode, want.stream)
					}
					return
				case want.err != nil:
					if !errors.Is(err, want.err) {
						t.Fatalf("read %d: error %v, want %v", i, err, want.err)
					}
					return
				case err != nil:
					t.Fatalf("read %d: %v", i, err)
				}
				if kind != want.kind {
					t.Fatalf("read %d: kind %v, want %v", i, kind, want.kind)
				}
				if (f != nil) != (kind == OtherFrame) {
					t.Fatalf("read %d: frame %v with kind %v", i, f, kind)
				}
				switch kind {
				case OtherFrame:
					if f.Header().Type != want.frame || f.Header().StreamID != want.stream {
						t.Fatalf("read %d: frame %v, want %v on stream %d", i, f, want.frame, want.stream)
					}
					continue
				case WindowUpdateFrame:
					if r.Window != (WindowUpdate{StreamID: want.stream, Increment: want.inc}) {
						t.Fatalf("read %d: window update %+v, want stream %d increment %d", i, r.Window, want.stream, want.inc)
					}
					continue
				case PingFrame:
					if want.ping == nil || r.Ping != *want.ping {
						t.Fatalf("read %d: ping %+v, want %+v", i, r.Ping, want.ping)
					}
					continue
				case HeaderFragment:
					continue
				}
				h := r.Headers
				if h.StreamID != want.stream || h.EndStream != want.end || h.Err() != nil {
					t.Errorf("read %d: stream %d end %v err %v", i, h.StreamID, h.EndStream, h.Err())
				}
				if h.HasPrio != (want.prio != nil) || want.prio != nil && h.Priority != *want.prio {
					t.Errorf("read %d: priority %v %+v, want %+v", i, h.HasPrio, h.Priority, want.prio)
				}
				wantFields := 2
				if want.empty {
					wantFields = 0
				}
				if got := h.Fields(); len(got) != wantFields ||
					wantFields == 2 && (got[0].Value != "POST" || got[1].Value != "/milvus.proto.milvus.MilvusService/Search") {
					t.Errorf("read %d: fields %v", i, got)
				}
			}
		})
	}
}
