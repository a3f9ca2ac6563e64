package ingress

import (
	"reflect"
	"strings"
	"testing"

	"github.com/l7lb/l7lb/internal/config"
)

func TestParseEndpointsFlag(t *testing.T) {
	tests := []struct {
		in      string
		key     string
		eps     []config.Endpoint
		dns     *config.DNSSource
		wantErr string
	}{
		{in: "milvus/milvus-demo=127.0.0.1:19530", key: "milvus/milvus-demo",
			eps: []config.Endpoint{{Address: "127.0.0.1", Port: 19530, Ready: true}}},
		{in: "milvus/milvus-demo=10.0.0.1:19530, 10.0.0.2:19531,[::1]:19532,proxy-0.local:19530", key: "milvus/milvus-demo",
			eps: []config.Endpoint{
				{Address: "10.0.0.1", Port: 19530, Ready: true},
				{Address: "10.0.0.2", Port: 19531, Ready: true},
				{Address: "::1", Port: 19532, Ready: true},
				{Address: "proxy-0.local", Port: 19530, Ready: true},
			}},
		{in: "milvus/milvus-demo=dns:milvus-demo-headless.milvus.svc:19530", key: "milvus/milvus-demo",
			dns: &config.DNSSource{Name: "milvus-demo-headless.milvus.svc", Port: 19530, Interval: DefaultDNSInterval}},
		{in: "milvus-demo=127.0.0.1:19530", wantErr: "is not NAMESPACE/SERVICE"},
		{in: "milvus/Milvus=127.0.0.1:19530", wantErr: "is not NAMESPACE/SERVICE"},
		{in: "milvus/a/b=127.0.0.1:19530", wantErr: "is not NAMESPACE/SERVICE"},
		{in: "milvus/milvus-demo", wantErr: "expected NAMESPACE/SERVICE=HOST:PORT"},
		{in: "milvus/milvus-demo=", wantErr: "expected HOST:PORT"},
		{in: "milvus/milvus-demo=127.0.0.1", wantErr: "missing port"},
		{in: "milvus/milvus-demo=127.0.0.1:0", wantErr: "within [1, 65535]"},
		{in: "milvus/milvus-demo=127.0.0.1:http", wantErr: "within [1, 65535]"},
		{in: "milvus/milvus-demo=::1:19530", wantErr: "with IPv6 as [::1]:19530"},
		{in: "milvus/milvus-demo=[::zz]:19530", wantErr: "invalid IPv6 address"},
		{in: "milvus/milvus-demo=:19530", wantErr: "empty host"},
		{in: "milvus/milvus-demo=a:1,a:1", wantErr: "a:1 listed twice"},
		{in: "milvus/milvus-demo=dns:name", wantErr: "expected dns:NAME:PORT"},
		{in: "milvus/milvus-demo=dns::19530", wantErr: "empty host"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			key, eps, dns, err := ParseEndpointsFlag(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.in) {
					t.Errorf("error %q does not quote the flag value", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if key != tc.key || !reflect.DeepEqual(eps, tc.eps) || !reflect.DeepEqual(dns, tc.dns) {
				t.Errorf("got %q %+v %+v", key, eps, dns)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "268435456": 268435456, "64Ki": 64 << 10, "256Mi": 256 << 20, "3Gi": 3 << 30, "4294967295": 1<<32 - 1} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5Mi", "256MB", "Mi", "4Gi", "1e6"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}
