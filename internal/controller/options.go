package controller

import (
	"log/slog"
	"time"

	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1"
	networkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1"

	"github.com/l7lb/l7lb/internal/config"
)

// Client is the part of a Kubernetes clientset the controller uses:
// kubeclient.Clientset in l7lb, client-go's fake clientset in tests. It is
// not kubernetes.Interface because that would link a client for every API
// group into the binary (issue 13).
type Client interface {
	// CoreV1: Services and TLS Secrets watched, Events written.
	CoreV1() corev1.CoreV1Interface
	// NetworkingV1: Ingresses and IngressClasses watched, Ingress status
	// written.
	NetworkingV1() networkingv1.NetworkingV1Interface
	// DiscoveryV1: EndpointSlices watched.
	DiscoveryV1() discoveryv1.DiscoveryV1Interface
	// CoordinationV1: the leader-election Lease.
	CoordinationV1() coordinationv1.CoordinationV1Interface
}

// Options configure a Controller.
type Options struct {
	Client Client
	Log    *slog.Logger

	// Namespace is the controller's own: its Lease lives there.
	Namespace string
	// CertNamespace holds the certificate store's Secrets (cert import
	// --kubernetes) and the trust stores' (truststore create
	// --kubernetes); default Namespace.
	CertNamespace string

	// Classes are ingress class names served even without an IngressClass
	// naming l7lb's controller, e.g. "alb" so the seed's file works as is.
	// IngressClasses whose spec.controller is ControllerName are always
	// served.
	Classes []string

	// PublishAddresses (IPs or host names) go into status.loadBalancer of
	// served Ingresses. When empty, PublishService's load-balancer status
	// is used.
	PublishAddresses []string
	// PublishService is "namespace/name" of l7lb's own Service.
	PublishService string

	// Identity names this replica in the Lease (pod name).
	Identity string
	// LeaseName is the Lease; empty disables leader election, and the
	// controller then always writes (one replica only).
	LeaseName string
	// Lease timings; zero means client-go's usual 15 s / 10 s / 2 s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration

	// Resync is the informers' resync period (0 = 10 minutes).
	Resync time.Duration
	// Debounce gathers a burst of changes into one snapshot (0 = 50 ms).
	Debounce time.Duration
}

// ControllerName is the spec.controller of IngressClasses l7lb serves.
const ControllerName = "l7lb.io/ingress-controller"

// Applier runs snapshots: *runtime.Runtime.
type Applier interface {
	Apply(*config.Snapshot) error
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CertNamespace == "" {
		o.CertNamespace = o.Namespace
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = 2 * time.Second
	}
	if o.Resync == 0 {
		o.Resync = 10 * time.Minute
	}
	if o.Debounce == 0 {
		o.Debounce = 50 * time.Millisecond
	}
}
