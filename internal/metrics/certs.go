package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/l7lb/l7lb/internal/certstore"
)

// Certs describes certificates by ARN (*certstore.Store, or the
// controller's store of Secrets).
type Certs interface {
	Describe(arn string) (certstore.Certificate, error)
}

// certCollector exports the expiry of every certificate the running
// configuration serves, read when Prometheus scrapes: a certificate
// renewed by `l7lb cert import` and a reload shows its new date on the
// next scrape without anything to keep in sync.
type certCollector struct {
	status   *statusCollector // for the running snapshot's listeners
	certs    Certs
	notAfter *prometheus.Desc
}

func newCertCollector(status *statusCollector, certs Certs) *certCollector {
	return &certCollector{
		status: status,
		certs:  certs,
		notAfter: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "certificate_not_after_timestamp_seconds"),
			"Unix time at which a served certificate expires, by ARN and domain name (its subject's common name or first DNS name).",
			[]string{"arn", "domain_name"}, nil),
	}
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.notAfter }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.status.src.Load()
	if p == nil || c.certs == nil {
		return
	}
	st := (*p).Status()
	if st.Snapshot == nil {
		return
	}
	seen := map[string]bool{}
	for _, l := range st.Snapshot.Listeners {
		for _, arn := range l.CertificateARNs {
			if seen[arn] {
				continue
			}
			seen[arn] = true
			// A certificate that cannot be described (deleted since the
			// load) has no series; the admin API shows its error.
			d, err := c.certs.Describe(arn)
			if err != nil || d.NotAfter.IsZero() {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.notAfter, prometheus.GaugeValue, float64(d.NotAfter.Unix()), arn, d.DomainName)
		}
	}
}
