package listener

import (
	"bufio"
	"strings"
	"testing"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		in   string
		want sniffed
	}{
		{clientPreface + "\x00\x00\x00\x04", protoH2},
		{"GET / HTTP/1.0\r\n\r\n", protoHTTP1}, // shorter than the preface
		{"POST /v2/vectordb/collections/list HTTP/1.1\r\nHost: x\r\n\r\n", protoHTTP1},
		{"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", protoUnknown}, // broken preface
		{"INVALID CONNECTION PREFACE\r\n\r\n", protoUnknown},
		{"\x16\x03\x01\x02\x00", protoUnknown}, // TLS to a plaintext port
		{"GE", protoUnknown},                   // closed mid-method
	}
	for _, tc := range tests {
		if got := sniff(bufio.NewReader(strings.NewReader(tc.in))); got != tc.want {
			t.Errorf("sniff(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
