package frameio

import (
	"bytes"
	"slices"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzReaderMatchesFramer reads the same bytes with the Reader and with
// x/net's Framer alone: frame by frame they must agree on failing or not,
// and on what each frame says (for header blocks, the decoded fields).
// Run it longer with: go test -fuzz FuzzReaderMatchesFramer ./internal/frameio
func FuzzReaderMatchesFramer(f *testing.F) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: "POST"})
	enc.WriteField(hpack.HeaderField{Name: "x-id", Value: "42"})
	block := hb.Bytes()
	f.Add(rawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, block))
	f.Add(append(rawFrame(http2.FrameHeaders, 0, 1, block[:2]), rawFrame(http2.FrameContinuation, http2.FlagHeadersEndHeaders, 1, block[2:])...))
	f.Add(rawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPadded|http2.FlagHeadersPriority, 3,
		append(append([]byte{2, 0x80, 0, 0, 1, 9}, block...), 0, 0)))
	f.Add(append(rawFrame(http2.FramePing, 0, 0, []byte("12345678")), rawFrame(http2.FrameWindowUpdate, 0, 5, []byte{0, 0, 1, 0})...))
	f.Add(rawFrame(http2.FrameData, http2.FlagDataEndStream, 1, []byte("hello")))

	f.Fuzz(func(t *testing.T, wire []byte) {
		ours := NewReader(bytes.NewReader(wire), 16384, 64<<10)
		theirs := http2.NewFramer(nil, bytes.NewReader(wire))
		theirs.SetMaxReadFrameSize(16384)
		theirHeaders := NewHeaderReader(64 << 10)
		for i := 0; i < 64; i++ {
			kind, of, oerr := ours.Next()
			tf, terr := theirs.ReadFrame()
			var tkind Kind
			if terr == nil {
				switch tf := tf.(type) {
				case *http2.HeadersFrame:
					done, err := theirHeaders.Begin(tf.StreamID, tf.StreamEnded(), tf.HasPriority(), tf.Priority, tf.HeaderBlockFragment(), tf.HeadersEnded())
					tkind, terr = fragmentKind(done), err
				case *http2.ContinuationFrame:
					done, err := theirHeaders.Continue(tf.StreamID, tf.HeaderBlockFragment(), tf.HeadersEnded())
					tkind, terr = fragmentKind(done), err
				case *http2.WindowUpdateFrame:
					tkind = WindowUpdateFrame
				case *http2.PingFrame:
					tkind = PingFrame
				}
			}
			if (oerr == nil) != (terr == nil) {
				t.Fatalf("frame %d: Reader error %v, Framer error %v", i, oerr, terr)
			}
			if oerr != nil {
				return
			}
			if kind != tkind {
				t.Fatalf("frame %d: Reader kind %v, Framer kind %v (%v)", i, kind, tkind, tf)
			}
			switch kind {
			case OtherFrame:
				if of.Header() != tf.Header() {
					t.Fatalf("frame %d: headers %v and %v", i, of.Header(), tf.Header())
				}
			case WindowUpdateFrame:
				w := tf.(*http2.WindowUpdateFrame)
				if ours.Window != (WindowUpdate{StreamID: w.StreamID, Increment: w.Increment}) {
					t.Fatalf("frame %d: window update %+v, Framer %+v", i, ours.Window, w)
				}
			case PingFrame:
				p := tf.(*http2.PingFrame)
				if ours.Ping != (Ping{Ack: p.IsAck(), Data: p.Data}) {
					t.Fatalf("frame %d: ping %+v, Framer %+v", i, ours.Ping, p)
				}
			case HeaderBlock:
				o, th := ours.Headers, theirHeaders
				if o.StreamID != th.StreamID || o.EndStream != th.EndStream || o.HasPrio != th.HasPrio || o.Priority != th.Priority ||
					o.Err() != th.Err() || !slices.Equal(o.Fields(), th.Fields()) {
					t.Fatalf("frame %d: header blocks differ: %+v %v and %+v %v", i, *o, o.Fields(), *th, th.Fields())
				}
			}
		}
	})
}

func fragmentKind(done bool) Kind {
	if done {
		return HeaderBlock
	}
	return HeaderFragment
}
