package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// addresses is what goes into status.loadBalancer: the --publish-address
// values, else l7lb's own Service's load-balancer addresses (none yet means
// no status is written, as LBC writes none before the ALB exists).
func (c *Controller) addresses() []string {
	if len(c.opts.PublishAddresses) > 0 {
		return c.opts.PublishAddresses
	}
	if c.opts.PublishService == "" {
		return nil
	}
	ns, name := splitKey(c.opts.PublishService)
	svc, err := c.services.Services(ns).Get(name)
	if err != nil {
		return nil
	}
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		switch {
		case in.Hostname != "":
			out = append(out, in.Hostname)
		case in.IP != "":
			out = append(out, in.IP)
		}
	}
	return out
}

// wantStatus is status.loadBalancer.ingress for a served Ingress: one entry
// per address with the listener ports its rules are on (LBC writes the
// ALB's DNS name and ports; kubectl shows the names under ADDRESS).
func wantStatus(addrs []string, ports []int) []networkingv1.IngressLoadBalancerIngress {
	sorted := slices.Clone(ports)
	slices.Sort(sorted)
	var ps []networkingv1.IngressPortStatus
	for _, p := range sorted {
		ps = append(ps, networkingv1.IngressPortStatus{Port: int32(p), Protocol: corev1.ProtocolTCP})
	}
	out := make([]networkingv1.IngressLoadBalancerIngress, 0, len(addrs))
	for _, a := range addrs {
		e := networkingv1.IngressLoadBalancerIngress{Ports: ps}
		if _, err := netip.ParseAddr(a); err == nil {
			e.IP = a
		} else {
			e.Hostname = a
		}
		out = append(out, e)
	}
	return out
}

// written reports whether a status holds only our addresses: then it is
// ours to clear when the Ingress is no longer served.
func written(st []networkingv1.IngressLoadBalancerIngress, addrs []string) bool {
	if len(st) == 0 || len(addrs) == 0 {
		return false
	}
	for _, e := range st {
		if !slices.Contains(addrs, e.IP) && !slices.Contains(addrs, e.Hostname) {
			return false
		}
	}
	return true
}

// publishStatus makes every Ingress's status match what is served. Only
// the leader calls it.
func (c *Controller) publishStatus(ctx context.Context, v *view, r *result) error {
	addrs := c.addresses()
	var errs []error
	for _, ing := range v.all {
		key := ing.Namespace + "/" + ing.Name
		var want []networkingv1.IngressLoadBalancerIngress
		if _, ok := r.served[key]; ok && len(addrs) > 0 {
			want = wantStatus(addrs, r.ports[key])
		} else if !written(ing.Status.LoadBalancer.Ingress, addrs) {
			continue // not served and not ours: leave it alone
		}
		if equalStatus(ing.Status.LoadBalancer.Ingress, want) {
			continue
		}
		cp := ing.DeepCopy()
		cp.Status.LoadBalancer.Ingress = want
		_, err := c.opts.Client.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		switch {
		case err == nil:
			c.log.Info("ingress status", "ingress", key, "addresses", addrs, "cleared", want == nil)
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Deleted or changed meanwhile: the informer brings the new
			// version and another sync.
		default:
			errs = append(errs, fmt.Errorf("updating status of Ingress %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

func equalStatus(a, b []networkingv1.IngressLoadBalancerIngress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].IP != b[i].IP || a[i].Hostname != b[i].Hostname || len(a[i].Ports) != len(b[i].Ports) {
			return false
		}
		for j := range a[i].Ports {
			if a[i].Ports[j].Port != b[i].Ports[j].Port || a[i].Ports[j].Protocol != b[i].Ports[j].Protocol {
				return false
			}
		}
	}
	return true
}

func splitKey(key string) (ns, name string) {
	for i := range len(key) {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}
