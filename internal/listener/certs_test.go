package listener

import (
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
)

func TestCertSetSelect(t *testing.T) {
	ca, err := pki.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(names ...string) Cert {
		l, err := ca.Issue(names, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return Cert{ARN: names[0], TLS: l.TLSCertificate()}
	}
	set, err := NewCertSet([]Cert{issue("milvus-demo.milvus.io"), issue("*.example.com"), issue("api.example.com", "other.io")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ sni, want string }{
		{"", "milvus-demo.milvus.io"},                       // no SNI: default
		{"unknown.org", "milvus-demo.milvus.io"},            // no match: default
		{"MILVUS-DEMO.milvus.io.", "milvus-demo.milvus.io"}, // case and trailing dot
		{"a.example.com", "*.example.com"},                  // wildcard
		{"api.example.com", "api.example.com"},              // exact beats wildcard
		{"other.io", "api.example.com"},                     // second SAN
		{"a.b.example.com", "milvus-demo.milvus.io"},        // wildcard covers one label only
	}
	for _, tc := range tests {
		if _, arn := set.Select(tc.sni); arn != tc.want {
			t.Errorf("Select(%q) = %s, want %s", tc.sni, arn, tc.want)
		}
	}
	if _, err := NewCertSet(nil); err == nil {
		t.Error("an empty certificate set was accepted")
	}
}
