package proxy

import (
	"crypto/tls"
	"net/http"
	"testing"
)

func TestRequestHost(t *testing.T) {
	tests := []struct {
		name, authority, sni, want string
	}{
		{"authority wins", "milvus-demo.milvus.io:443", "other.io", "milvus-demo.milvus.io"},
		{"IPv4 authority uses SNI", "127.0.0.1:8443", "milvus-demo.milvus.io", "milvus-demo.milvus.io"},
		{"IPv6 authority uses SNI", "[::1]:8443", "milvus-demo.milvus.io", "milvus-demo.milvus.io"},
		{"empty authority uses SNI", "", "milvus-demo.milvus.io", "milvus-demo.milvus.io"},
		{"IP without SNI stays IP", "127.0.0.1:8443", "", "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{Host: tc.authority, TLS: &tls.ConnectionState{ServerName: tc.sni}}
			if got := requestHost(r); got != tc.want {
				t.Errorf("requestHost = %q, want %q", got, tc.want)
			}
		})
	}
	if got := requestHost(&http.Request{Host: "10.0.0.1:80"}); got != "10.0.0.1" {
		t.Errorf("plaintext IP authority: %q", got)
	}
}
