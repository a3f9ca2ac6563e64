package listener

import (
	"bufio"
	"bytes"
)

type sniffed int

const (
	protoUnknown sniffed = iota
	protoH2
	protoHTTP1
)

// httpMethods are the request methods a plaintext HTTP/1.x client starts
// with.
var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("DELETE "), []byte("HEAD "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT "), []byte("TRACE "),
}

// sniff tells an HTTP/2 prior-knowledge connection (the client preface)
// from HTTP/1.x on a plaintext port. It reads only as many bytes as it
// needs, so a short HTTP/1.x request is never kept waiting for 24 bytes.
func sniff(br *bufio.Reader) sniffed {
	need := 1
	for {
		b, err := br.Peek(need)
		if len(b) == 0 {
			return protoUnknown
		}
		if bytes.Equal(b, []byte(clientPreface[:len(b)])) {
			if len(b) == len(clientPreface) {
				return protoH2
			}
			if err != nil {
				return protoUnknown
			}
			need = len(b) + 1
			continue
		}
		// Not the preface: an HTTP/1.x request must start with a method.
		for _, m := range httpMethods {
			n := min(len(b), len(m))
			if bytes.Equal(b[:n], m[:n]) {
				if n == len(m) {
					return protoHTTP1
				}
				if err != nil {
					return protoUnknown
				}
				need = len(b) + 1
				goto more
			}
		}
		return protoUnknown
	more:
	}
}
