package ingress

import (
	"fmt"
	"slices"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

// Translate turns the objects into a Snapshot for the Ingresses whose class
// is served. It reports every problem it finds, not just the first, as
// config.Problems; with any problem the Snapshot it returns holds only the
// Warnings, so that a half-understood configuration is never served while
// `validate` can still list everything. Warnings (ignored annotations,
// services without endpoints, ...) go into Snapshot.Warnings.
//
// Translate does not modify objs and may be called concurrently.
func Translate(objs manifest.Objects, opts Options) (*config.Snapshot, error) {
	t := newTranslator(objs, opts)
	t.run()
	if len(t.problems) > 0 {
		return &config.Snapshot{Warnings: t.warnings}, t.problems
	}
	return t.snapshot(), nil
}

// translator holds the state of one Translate call.
type translator struct {
	objs     manifest.Objects
	opts     Options
	problems config.Problems
	warnings []config.Warning

	services map[string]*manifest.Service // "ns/name"
	// svcSettings caches the parsed annotations of referenced Services so
	// that each problem or warning about one is reported once.
	svcSettings map[string]backendSettings

	ingresses    []*ingressModel
	listeners    map[int]*listenerAcc
	targetGroups map[string]*tgEntry
	scheme       config.Scheme
	schemeFrom   *ingressModel
	ipType       config.IPAddressType
	ipTypeFrom   *ingressModel
	// sslRedirect is the ssl-redirect port of the load balancer (0: none).
	sslRedirect     int
	sslRedirectFrom *ingressModel
	// routing is what actions and conditions parsing remembers.
	routing routingState
}

func newTranslator(objs manifest.Objects, opts Options) *translator {
	t := &translator{
		objs:         objs,
		opts:         opts,
		services:     map[string]*manifest.Service{},
		svcSettings:  map[string]backendSettings{},
		listeners:    map[int]*listenerAcc{},
		targetGroups: map[string]*tgEntry{},
		scheme:       config.SchemeInternal,
		ipType:       config.IPAddressTypeIPv4,
	}
	for i := range objs.Services {
		s := &objs.Services[i]
		t.services[s.Object.Namespace+"/"+s.Object.Name] = s
	}
	return t
}

func (t *translator) problem(o config.Origin, annotation, format string, args ...any) {
	t.problems = append(t.problems, config.Problem{Origin: o, Annotation: annotation, Message: fmt.Sprintf(format, args...)})
}

func (t *translator) warn(o config.Origin, annotation, format string, args ...any) {
	t.warnings = append(t.warnings, config.Warning{Origin: o, Annotation: annotation, Message: fmt.Sprintf(format, args...)})
}

func (t *translator) run() {
	selected := t.selectIngresses()
	if len(selected) == 0 {
		t.warn(config.Origin{}, "", "no Ingress of class %v found; nothing to serve", t.opts.classes())
	}
	for _, ing := range selected {
		m := t.buildIngress(ing)
		t.ingresses = append(t.ingresses, m)
	}
	t.mergeListeners()
	t.mergeSSLRedirect()
	t.resolveEndpoints()
	t.checkUnusedEndpointOptions()
}

// snapshot assembles the result in its documented order.
func (t *translator) snapshot() *config.Snapshot {
	s := &config.Snapshot{
		Listeners:    []config.Listener{},
		TargetGroups: []config.TargetGroup{},
		Warnings:     t.warnings,
	}
	ports := make([]int, 0, len(t.listeners))
	for p := range t.listeners {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	for _, p := range ports {
		l := t.listeners[p].listener(t.scheme, t.ipType)
		if l.Protocol == config.ProtocolHTTP && t.sslRedirect != 0 {
			// As LBC builds it: the HTTP listener's only action is the
			// redirect; its rules are not served.
			l.SSLRedirectPort, l.Rules = t.sslRedirect, []config.Rule{}
		}
		s.Listeners = append(s.Listeners, l)
	}
	names := make([]string, 0, len(t.targetGroups))
	for n := range t.targetGroups {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s.TargetGroups = append(s.TargetGroups, t.targetGroups[n].tg)
	}
	return s
}
