// Package grpcwire knows the few parts of the gRPC-over-HTTP/2 wire format
// that a balancer must read or write without decoding messages: status
// headers, grpc-timeout, and the 5-byte length prefix of each message.
package grpcwire

import (
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// IsGRPC reports whether a content-type is gRPC's ("application/grpc",
// "application/grpc+proto", "application/grpc;...").
func IsGRPC(contentType string) bool {
	if !strings.HasPrefix(contentType, "application/grpc") {
		return false
	}
	rest := contentType[len("application/grpc"):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// ParseTimeout decodes a grpc-timeout header value: up to 8 digits and a
// unit (H, M, S, m, u, n).
func ParseTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	// Clamp instead of overflowing: 99999999H is longer than any RPC.
	if n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, true
	}
	return time.Duration(n) * unit, true
}

// EncodeMessage percent-encodes a grpc-message value as the gRPC spec asks:
// bytes outside printable ASCII, and '%', become %XX.
func EncodeMessage(msg string) string {
	clean := true
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return msg
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// StatusText is the decimal text of a code, without allocating for the
// codes gRPC defines.
func StatusText(c codes.Code) string {
	if int(c) < len(codeText) {
		return codeText[c]
	}
	return strconv.Itoa(int(c))
}

var codeText = func() []string {
	t := make([]string, 17)
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()
