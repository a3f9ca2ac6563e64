package controller

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/ingress"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

const (
	annCertificateARN = "alb.ingress.kubernetes.io/certificate-arn"
	annIngressClass   = "kubernetes.io/ingress.class"
	annDefaultClass   = "ingressclass.kubernetes.io/is-default-class"
)

// view is one consistent reading of the informer caches for a sync.
type view struct {
	classes []string
	// objs holds every IngressClass, Service and EndpointSlice; Ingresses
	// are added per translation attempt (see isolate).
	objs manifest.Objects
	// served are the Ingresses of a served class, by "namespace/name",
	// already prepared (spec.tls Secrets turned into certificate ARNs).
	served map[string]*networkingv1.Ingress
	// problems found before translation, by Ingress key.
	problems map[string]config.Problems
	// all Ingresses in the cluster, for status clean-up.
	all []*networkingv1.Ingress
}

// gather reads the caches. It never modifies cached objects: an Ingress
// that needs changing is deep-copied first.
func (c *Controller) gather() (*view, error) {
	v := &view{served: map[string]*networkingv1.Ingress{}, problems: map[string]config.Problems{}}
	ics, err := c.classes.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing IngressClasses: %w", err)
	}
	v.classes = c.servedClasses(ics)
	var defaults []string
	for _, ic := range ics {
		v.objs.IngressClasses = append(v.objs.IngressClasses, manifest.IngressClass{Source: source("IngressClass", "", ic.Name), Object: *ic})
		if ic.Annotations[annDefaultClass] == "true" && slices.Contains(v.classes, ic.Name) {
			defaults = append(defaults, ic.Name)
		}
	}
	svcs, err := c.services.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	for _, s := range svcs {
		v.objs.Services = append(v.objs.Services, manifest.Service{Source: source("Service", s.Namespace, s.Name), Object: *s})
	}
	eps, err := c.slices.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing EndpointSlices: %w", err)
	}
	for _, e := range eps {
		v.objs.EndpointSlices = append(v.objs.EndpointSlices, manifest.EndpointSlice{Source: source("EndpointSlice", e.Namespace, e.Name), Object: *e})
	}
	ings, err := c.ingresses.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing Ingresses: %w", err)
	}
	v.all = ings
	for _, ing := range ings {
		class, ok := classOf(ing, defaults)
		if !ok || !slices.Contains(v.classes, class) {
			continue
		}
		key := ing.Namespace + "/" + ing.Name
		prepared, ps := c.prepare(ing)
		v.served[key] = prepared
		if len(ps) > 0 {
			v.problems[key] = ps
		}
	}
	return v, nil
}

// servedClasses: IngressClasses naming l7lb's controller, plus the flag's
// classes unless an IngressClass of that name belongs to some other
// controller (serving another controller's Ingresses would be a fight).
func (c *Controller) servedClasses(ics []*networkingv1.IngressClass) []string {
	byName := map[string]string{}
	var out []string
	for _, ic := range ics {
		byName[ic.Name] = ic.Spec.Controller
		if ic.Spec.Controller == ControllerName {
			out = append(out, ic.Name)
		}
	}
	for _, name := range c.opts.Classes {
		ctl, exists := byName[name]
		switch {
		case slices.Contains(out, name):
		case !exists || ctl == ingress.ControllerLBC:
			out = append(out, name)
		default:
			c.log.Debug("class not served: its IngressClass names another controller", "class", name, "controller", ctl)
		}
	}
	slices.Sort(out)
	return out
}

// classOf mirrors the translator's choice (and LBC's): the legacy
// annotation, else spec.ingressClassName, else the single default class.
func classOf(ing *networkingv1.Ingress, defaults []string) (string, bool) {
	if a, ok := ing.Annotations[annIngressClass]; ok {
		return a, true
	}
	if ing.Spec.IngressClassName != nil {
		return *ing.Spec.IngressClassName, true
	}
	if len(defaults) == 1 {
		return defaults[0], true
	}
	return "", false
}

// prepare checks what only the cluster can tell (Services and Secrets
// exist) and turns spec.tls into certificate ARNs when the Ingress has no
// certificate-arn, as LBC discovers certificates for spec.tls hosts.
func (c *Controller) prepare(ing *networkingv1.Ingress) (*networkingv1.Ingress, config.Problems) {
	var ps config.Problems
	o := config.Origin{Object: "Ingress " + ing.Namespace + "/" + ing.Name}
	bad := func(annotation, format string, args ...any) {
		ps = append(ps, config.Problem{Origin: o, Annotation: annotation, Message: fmt.Sprintf(format, args...)})
	}
	for _, svc := range backendServices(ing) {
		if _, err := c.services.Services(ing.Namespace).Get(svc); err != nil {
			bad("", "backend Service %s/%s not found", ing.Namespace, svc)
		}
	}
	ps = append(ps, checkGroupAnnotations(ing, o)...)
	raw, hasARN := ing.Annotations[annCertificateARN]
	if strings.Contains(raw, secretARNPrefix) {
		bad(annCertificateARN, "%s… names are made by l7lb from spec.tls; use spec.tls to serve a Secret", secretARNPrefix)
	}
	if hasARN || len(ing.Spec.TLS) == 0 {
		return ing, ps
	}
	var arns []string
	for _, t := range ing.Spec.TLS {
		if t.SecretName == "" {
			continue
		}
		arn := secretARNPrefix + ing.Namespace + "/" + t.SecretName
		if _, err := c.certs.Load(arn); err != nil {
			bad("", "spec.tls Secret %s/%s: %v", ing.Namespace, t.SecretName, err)
			continue
		}
		if !slices.Contains(arns, arn) {
			arns = append(arns, arn)
		}
	}
	if len(arns) == 0 {
		return ing, ps
	}
	out := ing.DeepCopy()
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[annCertificateARN] = strings.Join(arns, ",")
	return out, ps
}

// backendServices lists the Services an Ingress forwards to (not the
// actions.* pseudo-services, which the translator handles).
func backendServices(ing *networkingv1.Ingress) []string {
	var out []string
	add := func(b *networkingv1.IngressBackend) {
		if b == nil || b.Service == nil || b.Service.Port.Name == "use-annotation" || slices.Contains(out, b.Service.Name) {
			return
		}
		out = append(out, b.Service.Name)
	}
	add(ing.Spec.DefaultBackend)
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for i := range r.HTTP.Paths {
			add(&r.HTTP.Paths[i].Backend)
		}
	}
	return out
}

// source is the origin of an object read from the API: no file, no line.
func source(kind, ns, name string) manifest.Source {
	obj := kind + " " + name
	if ns != "" {
		obj = kind + " " + ns + "/" + name
	}
	return manifest.Source{Origin: config.Origin{Object: obj}}
}

func secretKey(s *corev1.Secret) string { return s.Namespace + "/" + s.Name }
