package grpcwire

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1S", time.Second, true},
		{"250m", 250 * time.Millisecond, true},
		{"99999999H", 1<<63 - 1, true},
		{"5u", 5 * time.Microsecond, true},
		{"7n", 7, true},
		{"3M", 3 * time.Minute, true},
		{"1", 0, false},
		{"S", 0, false},
		{"1x", 0, false},
		{"123456789S", 0, false},
		{"-1S", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "application/grpc;charset=x": true,
		"application/grpcx": false, "application/json": false, "": false, "application/grpc-web": false,
	} {
		if IsGRPC(ct) != want {
			t.Errorf("IsGRPC(%q) = %v", ct, !want)
		}
	}
}

func TestEncodeMessage(t *testing.T) {
	for in, want := range map[string]string{
		"plain text": "plain text", "100%": "100%25", "über": "%C3%BCber", "a\nb": "a%0Ab",
	} {
		if got := EncodeMessage(in); got != want {
			t.Errorf("EncodeMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

func frame(size int) []byte {
	b := make([]byte, 5+size)
	binary.BigEndian.PutUint32(b[1:], uint32(size))
	return b
}

func TestInspectorAcrossChunks(t *testing.T) {
	stream := append(append(frame(10), frame(0)...), frame(300)...)
	// Feed in every chunk size so that prefixes split across chunks.
	for chunk := 1; chunk <= len(stream); chunk++ {
		in := &Inspector{Limit: 300}
		for i := 0; i < len(stream); i += chunk {
			if err := in.Observe(stream[i:min(i+chunk, len(stream))]); err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
		}
		if in.Messages != 3 {
			t.Fatalf("chunk %d: saw %d messages, want 3", chunk, in.Messages)
		}
	}
	in := &Inspector{Limit: 299}
	err := in.Observe(stream)
	var tl *MessageTooLarge
	if !errors.As(err, &tl) || tl.Size != 300 {
		t.Fatalf("want MessageTooLarge{300}, got %v", err)
	}
}
