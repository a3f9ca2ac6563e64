// Package kubeclient builds the Kubernetes API client l7lb uses: the typed
// clients of the four API groups it reads and writes (core/v1,
// networking.k8s.io/v1, discovery.k8s.io/v1, coordination.k8s.io/v1).
//
// kubernetes.NewForConfig would do the same job, but its Clientset holds a
// client for every API group, so linking it links all of them, and their
// apply configurations, into the production binary: megabytes l7lb never
// runs (issue 13). The consumers declare what they need as small interfaces
// (controller.Client, certstore.KubeClient) that both this Clientset and
// client-go's fake clientset satisfy.
package kubeclient

import (
	"fmt"

	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1"
	networkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// Clientset is the part of kubernetes.Clientset l7lb uses.
type Clientset struct {
	core         *corev1.CoreV1Client
	networking   *networkingv1.NetworkingV1Client
	discovery    *discoveryv1.DiscoveryV1Client
	coordination *coordinationv1.CoordinationV1Client
}

// NewForConfig is kubernetes.NewForConfig for the four groups: the same
// user agent default, one HTTP client (one connection pool) shared by the
// groups, and, when cfg sets QPS without a RateLimiter, one rate limiter
// shared by them.
func NewForConfig(cfg *rest.Config) (*Clientset, error) {
	c := *cfg
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	hc, err := rest.HTTPClientFor(&c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes HTTP client: %w", err)
	}
	if c.RateLimiter == nil && c.QPS > 0 {
		if c.Burst <= 0 {
			return nil, fmt.Errorf("kubernetes client: QPS %v needs a burst above 0", c.QPS)
		}
		c.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(c.QPS, c.Burst)
	}
	var cs Clientset
	if cs.core, err = corev1.NewForConfigAndClient(&c, hc); err != nil {
		return nil, fmt.Errorf("kubernetes core/v1 client: %w", err)
	}
	if cs.networking, err = networkingv1.NewForConfigAndClient(&c, hc); err != nil {
		return nil, fmt.Errorf("kubernetes networking.k8s.io/v1 client: %w", err)
	}
	if cs.discovery, err = discoveryv1.NewForConfigAndClient(&c, hc); err != nil {
		return nil, fmt.Errorf("kubernetes discovery.k8s.io/v1 client: %w", err)
	}
	if cs.coordination, err = coordinationv1.NewForConfigAndClient(&c, hc); err != nil {
		return nil, fmt.Errorf("kubernetes coordination.k8s.io/v1 client: %w", err)
	}
	return &cs, nil
}

// CoreV1 reads Services and Secrets, writes Secrets and Events.
func (c *Clientset) CoreV1() corev1.CoreV1Interface { return c.core }

// NetworkingV1 reads Ingresses and IngressClasses, writes Ingress status.
func (c *Clientset) NetworkingV1() networkingv1.NetworkingV1Interface { return c.networking }

// DiscoveryV1 reads EndpointSlices.
func (c *Clientset) DiscoveryV1() discoveryv1.DiscoveryV1Interface { return c.discovery }

// CoordinationV1 holds the leader-election Lease.
func (c *Clientset) CoordinationV1() coordinationv1.CoordinationV1Interface {
	return c.coordination
}
