package ingress

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

// tgEntry is a target group being built, with what is needed to find its
// endpoints and to explain conflicts.
type tgEntry struct {
	tg      config.TargetGroup
	firstBy *ingressModel
	origin  config.Origin // the first backend that referenced it
	svc     *manifest.Service
	svcPort *corev1.ServicePort // nil without a Service document
	used    bool
}

// backendTargetGroup returns the name of the target group for a backend,
// creating it on first use. at locates fields inside the backend.
func (t *translator) backendTargetGroup(m *ingressModel, b networkingv1.IngressBackend, at func(...any) config.Origin) (string, bool) {
	if b.Service == nil {
		t.problem(at(), "", "backend.resource is not supported (the AWS Load Balancer Controller does not support it either); use backend.service")
		return "", false
	}
	ns, svcName, port := m.ing.Object.Namespace, b.Service.Name, b.Service.Port
	if port.Name == useAnnotationPort {
		t.problem(at("service", "port"), annActionsPrefix+svcName,
			"a forward target group needs a real port of Service %s, not use-annotation", svcName)
		return "", false
	}
	if port.Name == "" && port.Number == 0 {
		t.problem(at("service", "port"), "", "backend service %s needs port.number or port.name", svcName)
		return "", false
	}
	ref := config.ServiceRef{Namespace: ns, Name: svcName, Port: int(port.Number), PortName: port.Name}
	portText := port.Name
	if port.Name == "" {
		portText = strconv.Itoa(int(port.Number))
	}
	name := ns + "/" + svcName + ":" + portText

	svc := t.services[ns+"/"+svcName]
	var svcPort *corev1.ServicePort
	if svc != nil {
		svcPort = lookupServicePort(&svc.Object, port)
		if svcPort == nil {
			t.problem(at("service", "port"), "", "Service %s/%s (%s) has no port %s", ns, svcName, place(svc.Origin), portText)
			return "", false
		}
	}

	tg, from := t.effectiveSettings(m, svc)
	tg.Name, tg.Service, tg.Endpoints = name, ref, []config.Endpoint{}
	if e, ok := t.targetGroups[name]; ok {
		t.checkSameSettings(e, tg, m, at())
		return name, true
	}
	t.targetGroups[name] = &tgEntry{tg: tg, firstBy: m, origin: at(), svc: svc, svcPort: svcPort}
	if tg.TargetType == config.TargetTypeInstance {
		o, explicit := from[annTargetType]
		how := "instance"
		if !explicit {
			o, how = at(), "instance (the default)"
		}
		t.warn(o, annTargetType, "target group %s: target-type %s would send traffic through node ports; l7lb sends it to the service's endpoints directly, as with target-type ip", name, how)
	}
	return name, true
}

// effectiveSettings merges backend settings as LBC does: the Service's
// annotations override the Ingress's, which override the defaults. It
// returns them as a TargetGroup without identity or targets, and where each
// explicit value came from.
func (t *translator) effectiveSettings(m *ingressModel, svc *manifest.Service) (config.TargetGroup, map[string]config.Origin) {
	tg := config.TargetGroup{
		Protocol:        config.ProtocolHTTP,
		ProtocolVersion: config.VersionHTTP1,
		TargetType:      config.TargetTypeInstance,
		MaxMessageBytes: config.DefaultMaxMessageBytes,
	}
	from := map[string]config.Origin{}
	raw := map[string]string{}
	layers := []backendSettings{m.conf}
	if svc != nil {
		layers = append(layers, t.serviceSettings(svc))
	}
	for _, l := range layers { // later layers win
		if l.protocol != nil {
			tg.Protocol = *l.protocol
		}
		if l.version != nil {
			tg.ProtocolVersion = *l.version
		}
		if l.targetType != nil {
			tg.TargetType = *l.targetType
		}
		if l.maxMessageBytes != nil {
			tg.MaxMessageBytes = *l.maxMessageBytes
		}
		for k, o := range l.from {
			from[k] = o
		}
		for k, v := range l.raw {
			raw[k] = v
		}
	}
	t.parseTargetGroupExtras(&tg, raw, from)
	return tg, from
}

// serviceSettings parses a referenced Service's annotations once.
func (t *translator) serviceSettings(svc *manifest.Service) backendSettings {
	key := svc.Object.Namespace + "/" + svc.Object.Name
	if s, ok := t.svcSettings[key]; ok {
		return s
	}
	a := annotated{src: svc.Source, ann: svc.Object.Annotations}
	t.checkAnnotations(a, serviceHonoured)
	s := t.parseBackendSettings(a)
	t.svcSettings[key] = s
	return s
}

// checkSameSettings reports two Ingresses asking for different settings for
// the same service port: one target group cannot speak both.
func (t *translator) checkSameSettings(e *tgEntry, tg config.TargetGroup, m *ingressModel, o config.Origin) {
	var diffs []string
	add := func(what string, a, b any) {
		if a != b {
			diffs = append(diffs, fmt.Sprintf("%s %v vs %v", what, a, b))
		}
	}
	add("backend-protocol", e.tg.Protocol, tg.Protocol)
	add("backend-protocol-version", e.tg.ProtocolVersion, tg.ProtocolVersion)
	add("target-type", e.tg.TargetType, tg.TargetType)
	add("max-message-bytes", e.tg.MaxMessageBytes, tg.MaxMessageBytes)
	add("health check", fmt.Sprint(e.tg.HealthCheck), fmt.Sprint(tg.HealthCheck))
	add("deregistration delay", e.tg.DeregistrationDelay, tg.DeregistrationDelay)
	add("slow start", e.tg.SlowStart, tg.SlowStart)
	add("retry policy", e.tg.RetryPolicy, tg.RetryPolicy)
	add("algorithm", e.tg.Algorithm, tg.Algorithm)
	add("anomaly mitigation", e.tg.AnomalyMitigation, tg.AnomalyMitigation)
	if len(diffs) == 0 {
		return
	}
	t.problem(o, "", "target group %s: conflicting settings between Ingress %s (%s) and Ingress %s: %s",
		tg.Name, e.firstBy.key, place(e.origin), m.key, strings.Join(diffs, ", "))
}

// lookupServicePort finds the Service port an Ingress backend names.
func lookupServicePort(svc *corev1.Service, p networkingv1.ServiceBackendPort) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if (p.Name != "" && sp.Name == p.Name) || (p.Name == "" && sp.Port == p.Number) {
			return sp
		}
	}
	return nil
}

func place(o config.Origin) string {
	if o.Line > 0 {
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	}
	return o.File
}

func itoa(i int) string { return strconv.Itoa(i) }
