package ingress

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

// portCand is a port offered by an EndpointSlice or Endpoints subset.
type portCand struct {
	name string
	port int
}

// resolveEndpoints fills every target group's targets, in this order of
// preference: Options.DNS or Options.Endpoints (the operator said so
// explicitly), EndpointSlices (what kube-proxy uses), legacy Endpoints.
func (t *translator) resolveEndpoints() {
	names := make([]string, 0, len(t.targetGroups))
	for n := range t.targetGroups {
		names = append(names, n)
	}
	slices.Sort(names) // warnings in a stable order
	for _, n := range names {
		t.resolve(t.targetGroups[n])
	}
}

func (t *translator) resolve(e *tgEntry) {
	ref := e.tg.Service
	key := ref.Namespace + "/" + ref.Name
	dns, hasDNS := t.opts.DNS[key]
	eps, hasEps := t.opts.Endpoints[key]
	switch {
	case hasDNS && hasEps:
		t.problem(e.origin, "", "--endpoints gives both addresses and a DNS name for %s; give one", key)
		return
	case hasDNS:
		e.tg.DNS = &dns
		return
	case hasEps:
		e.tg.Endpoints = append([]config.Endpoint{}, eps...)
		t.warnIfNoneReady(e)
		return
	}

	var (
		found   []config.Endpoint
		sources int // objects that belong to the service
	)
	for _, s := range t.slicesFor(ref) {
		sources++
		found = append(found, e.fromSlice(&s.Object)...)
	}
	if sources == 0 {
		for i := range t.objs.Endpoints {
			ep := &t.objs.Endpoints[i]
			if ep.Object.Namespace == ref.Namespace && ep.Object.Name == ref.Name {
				sources++
				found = append(found, e.fromEndpoints(&ep.Object)...)
			}
		}
	}
	e.tg.Endpoints = dedupe(found)
	switch {
	case sources == 0:
		t.warn(e.origin, "", "service %s has no endpoints (no --endpoints, EndpointSlice or Endpoints for it); target group %s has no targets", key, e.tg.Name)
	case len(e.tg.Endpoints) == 0:
		t.warn(e.origin, "", "the EndpointSlices or Endpoints of service %s have no port matching %s; target group %s has no targets", key, portText(ref), e.tg.Name)
	default:
		t.warnIfNoneReady(e)
	}
}

func (t *translator) warnIfNoneReady(e *tgEntry) {
	for _, ep := range e.tg.Endpoints {
		if ep.Ready {
			return
		}
	}
	if len(e.tg.Endpoints) > 0 {
		t.warn(e.origin, "", "target group %s has %d endpoints but none is ready", e.tg.Name, len(e.tg.Endpoints))
	}
}

// slicesFor returns the service's EndpointSlices in name order.
func (t *translator) slicesFor(ref config.ServiceRef) []*manifest.EndpointSlice {
	var out []*manifest.EndpointSlice
	for i := range t.objs.EndpointSlices {
		s := &t.objs.EndpointSlices[i]
		if s.Object.Namespace == ref.Namespace && s.Object.Labels[discoveryv1.LabelServiceName] == ref.Name {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b *manifest.EndpointSlice) int { return cmp.Compare(a.Object.Name, b.Object.Name) })
	return out
}

func (e *tgEntry) fromSlice(s *discoveryv1.EndpointSlice) []config.Endpoint {
	cands := make([]portCand, 0, len(s.Ports))
	for _, p := range s.Ports {
		if p.Port == nil {
			continue
		}
		c := portCand{port: int(*p.Port)}
		if p.Name != nil {
			c.name = *p.Name
		}
		cands = append(cands, c)
	}
	port, ok := e.matchPort(cands)
	if !ok {
		return nil
	}
	var out []config.Endpoint
	for _, ep := range s.Endpoints {
		if len(ep.Addresses) == 0 {
			continue
		}
		// The addresses of one endpoint are fungible (the EndpointSlice
		// controller only ever writes one); use the first.
		out = append(out, config.Endpoint{
			Address:     ep.Addresses[0],
			Port:        port,
			Ready:       ep.Conditions.Ready == nil || *ep.Conditions.Ready,
			Terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating,
		})
	}
	return out
}

//nolint:staticcheck // v1 Endpoints is deliberately supported
func (e *tgEntry) fromEndpoints(eps *corev1.Endpoints) []config.Endpoint {
	var out []config.Endpoint
	for _, ss := range eps.Subsets {
		cands := make([]portCand, 0, len(ss.Ports))
		for _, p := range ss.Ports {
			cands = append(cands, portCand{name: p.Name, port: int(p.Port)})
		}
		port, ok := e.matchPort(cands)
		if !ok {
			continue
		}
		for _, a := range ss.Addresses {
			out = append(out, config.Endpoint{Address: a.IP, Port: port, Ready: true})
		}
		for _, a := range ss.NotReadyAddresses {
			out = append(out, config.Endpoint{Address: a.IP, Port: port, Ready: false})
		}
	}
	return out
}

// matchPort picks the target port among an endpoint object's ports. With a
// Service document it follows Kubernetes: endpoint ports carry the Service
// port's name (empty for a single unnamed port), and a numeric targetPort
// identifies the port too. Without one it guesses in order: same number as
// the Service port (targetPort defaults to port), same name as the
// Ingress's port name, the only port there is.
func (e *tgEntry) matchPort(cands []portCand) (int, bool) {
	find := func(ok func(portCand) bool) (int, bool) {
		for _, c := range cands {
			if ok(c) {
				return c.port, true
			}
		}
		return 0, false
	}
	if sp := e.svcPort; sp != nil {
		if p, ok := find(func(c portCand) bool { return c.name == sp.Name }); ok {
			return p, true
		}
		if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0 {
			return find(func(c portCand) bool { return c.port == int(sp.TargetPort.IntVal) })
		}
		if sp.TargetPort.Type == intstr.Int { // targetPort unset: same as port
			return find(func(c portCand) bool { return c.port == int(sp.Port) })
		}
		return 0, false
	}
	ref := e.tg.Service
	if ref.Port != 0 {
		if p, ok := find(func(c portCand) bool { return c.port == ref.Port }); ok {
			return p, true
		}
	}
	if ref.PortName != "" {
		if p, ok := find(func(c portCand) bool { return c.name == ref.PortName }); ok {
			return p, true
		}
	}
	if len(cands) == 1 {
		return cands[0].port, true
	}
	return 0, false
}

// dedupe keeps the first of each address:port, ready if any copy is and
// terminating only if every copy is (an endpoint can briefly appear in two
// slices while the controller moves it).
func dedupe(eps []config.Endpoint) []config.Endpoint {
	out := []config.Endpoint{}
	idx := map[config.Endpoint]int{}
	for _, ep := range eps {
		k := config.Endpoint{Address: ep.Address, Port: ep.Port}
		if i, ok := idx[k]; ok {
			out[i].Ready = out[i].Ready || ep.Ready
			out[i].Terminating = out[i].Terminating && ep.Terminating
			continue
		}
		idx[k] = len(out)
		out = append(out, ep)
	}
	return out
}

// checkUnusedEndpointOptions warns about --endpoints for services no
// backend uses: most likely a typo in the namespace or name.
func (t *translator) checkUnusedEndpointOptions() {
	used := map[string]bool{}
	for _, e := range t.targetGroups {
		used[e.tg.Service.Namespace+"/"+e.tg.Service.Name] = true
	}
	var unused []string
	for k := range t.opts.Endpoints {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	for k := range t.opts.DNS {
		if !used[k] && !slices.Contains(unused, k) {
			unused = append(unused, k)
		}
	}
	slices.Sort(unused)
	for _, k := range unused {
		t.warn(config.Origin{}, "", "--endpoints for %s: no served Ingress uses this service", k)
	}
}

func portText(ref config.ServiceRef) string {
	if ref.PortName != "" {
		return "port " + ref.PortName
	}
	return "port " + itoa(ref.Port)
}
