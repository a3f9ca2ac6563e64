package h2proxy

import (
	"context"
	"encoding/binary"
	"io"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// A deadline that cuts a reply in the middle of a message ends the stream
// with RST_STREAM(CANCEL), not with trailers after a truncated message
// (which grpc-go reads as INTERNAL "unexpected EOF", whatever the status
// says); at a message boundary, or before any reply, it is the usual
// DEADLINE_EXCEEDED status.
func TestDeadlineMidMessageResets(t *testing.T) {
	e := startFlowEnv(t, Limits{})
	// The client grants 64 KiB of stream window and never more: the reply
	// (8 MiB) stops in the middle of its message until the deadline.
	rc := dialRaw(t, e.addr, 64<<10)
	rc.mu.Lock()
	rc.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/test.Svc/Big"}, {":authority", "t"},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"grpc-timeout", "200m"}} {
		rc.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true})
	body := []byte(strconv.Itoa(8 << 20))
	msg := make([]byte, 5+len(body))
	binary.BigEndian.PutUint32(msg[1:], uint32(len(body)))
	copy(msg[5:], body)
	rc.fr.WriteData(1, true, msg)
	rc.flush()
	rc.mu.Unlock()

	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	fr := http2.NewFramer(io.Discard, rc.c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	data := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no end of the stream (after %d bytes of DATA): %v", data, err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			data += len(f.Data())
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				t.Fatalf("trailers %v after %d bytes of an unfinished message; want RST_STREAM(CANCEL)", f.RegularFields(), data)
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeCancel {
				t.Fatalf("RST_STREAM %v, want CANCEL", f.ErrCode)
			}
			if data == 0 {
				t.Fatal("the reset came before any reply DATA: the test did not cut a message")
			}
			e.settled(t)
			return
		}
	}
}

// Through grpc-go, a deadline that cuts a large reply is DEADLINE_EXCEEDED,
// never INTERNAL: the storm of issue 10 saw 4 INTERNAL "unexpected EOF" in
// 1172 calls before.
func TestDeadlineCutsReplyAsDeadlineExceeded(t *testing.T) {
	e := startFlowEnv(t, Limits{})
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	codesSeen := map[codes.Code]int{}
	for i := 0; i < 40; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(5+i%10)*time.Millisecond)
		in := []byte(strconv.Itoa(8 << 20))
		var out []byte
		err := cc.Invoke(ctx, "/test.Svc/Big", &in, &out)
		cancel()
		codesSeen[status.Code(err)]++
		if c := status.Code(err); c != codes.DeadlineExceeded && c != codes.OK {
			t.Fatalf("call %d: %v; want DEADLINE_EXCEEDED (or OK)", i, err)
		}
	}
	t.Logf("codes: %v", codesSeen)
	e.settled(t)
}
