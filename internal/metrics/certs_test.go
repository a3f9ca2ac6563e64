package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/runtime"
)

// fakeCerts describes the certificates it holds; any other ARN is not
// found.
type fakeCerts map[string]certstore.Certificate

func (f fakeCerts) Describe(arn string) (certstore.Certificate, error) {
	if c, ok := f[arn]; ok {
		return c, nil
	}
	return certstore.Certificate{}, errors.New("certificate " + arn + " not found")
}

func TestCertificateExpiry(t *testing.T) {
	const a, b, gone = "arn:a", "arn:b", "arn:gone"
	certs := fakeCerts{
		a: {ARN: a, DomainName: "milvus-demo.milvus.io", NotAfter: time.Unix(1900000000, 0)},
		b: {ARN: b, DomainName: "other.milvus.io", NotAfter: time.Unix(1800000000, 0)},
	}
	m := New(Options{Version: "test", Certs: certs})
	// Before the runtime is attached there is nothing to describe.
	if n, err := testutil.GatherAndCount(m.Registry(), "l7lb_certificate_not_after_timestamp_seconds"); err != nil || n != 0 {
		t.Fatalf("%d series before Attach (%v)", n, err)
	}
	// a is served on two listeners (one series), b by SNI, and gone can
	// no longer be described (no series rather than a zero date).
	snap := &config.Snapshot{Listeners: []config.Listener{
		{Port: 443, CertificateARNs: []string{a, b, gone}},
		{Port: 8443, CertificateARNs: []string{a}},
	}}
	m.Attach(fakeStatus(runtime.Status{Snapshot: snap}))
	want := `
# HELP l7lb_certificate_not_after_timestamp_seconds Unix time at which a served certificate expires, by ARN and domain name (its subject's common name or first DNS name).
# TYPE l7lb_certificate_not_after_timestamp_seconds gauge
l7lb_certificate_not_after_timestamp_seconds{arn="arn:a",domain_name="milvus-demo.milvus.io"} 1.9e+09
l7lb_certificate_not_after_timestamp_seconds{arn="arn:b",domain_name="other.milvus.io"} 1.8e+09
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "l7lb_certificate_not_after_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}
