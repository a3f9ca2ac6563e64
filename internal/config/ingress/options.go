package ingress

import (
	"time"

	"github.com/l7lb/l7lb/internal/config"
)

// Options tells Translate what to serve and where targets are. The zero
// value serves class "alb" with endpoints from the objects only.
type Options struct {
	// Classes are the ingress class names served; empty means ["alb"].
	Classes []string
	// Endpoints maps "namespace/service" to explicit targets (from
	// --endpoints), with ports already resolved. They replace any
	// EndpointSlice or Endpoints objects for that service.
	Endpoints map[string][]config.Endpoint
	// DNS maps "namespace/service" to a DNS name resolved at run time
	// (from --endpoints ns/svc=dns:NAME:PORT).
	DNS map[string]config.DNSSource
	// KnownCertificate reports whether a certificate ARN exists in the
	// certificate store. Nil accepts every ARN. It must be pure: it is
	// called during translation.
	KnownCertificate func(arn string) bool
	// KnownTrustStore reports whether a trust store ARN or name exists
	// (mutual-authentication verify). Nil accepts every one. It must be
	// pure, like KnownCertificate.
	KnownTrustStore func(ref string) bool
}

// DefaultClass is served when Options.Classes is empty, as LBC's default
// --ingress-class is "alb".
const DefaultClass = "alb"

// DefaultDNSInterval is how often a DNS endpoint source is re-resolved when
// the flag does not say.
const DefaultDNSInterval = 10 * time.Second

// Controller names an IngressClass may carry for l7lb to serve its
// Ingresses: LBC's own, so that the very same manifests work, and l7lb's.
const (
	ControllerLBC  = "ingress.k8s.aws/alb"
	ControllerL7LB = "l7lb.io/ingress-controller"
)

func (o Options) classes() []string {
	if len(o.Classes) == 0 {
		return []string{DefaultClass}
	}
	return o.Classes
}
