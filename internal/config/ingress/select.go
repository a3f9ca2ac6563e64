package ingress

import (
	"cmp"
	"slices"

	"github.com/l7lb/l7lb/internal/config/manifest"
)

// selectIngresses returns the Ingresses of a served class, in
// namespace/name order (LBC's order within a group), after checking the
// served IngressClass objects.
func (t *translator) selectIngresses() []*manifest.Ingress {
	served := map[string]bool{}
	for _, c := range t.opts.classes() {
		served[c] = true
	}
	var defaults []string
	for i := range t.objs.IngressClasses {
		ic := &t.objs.IngressClasses[i]
		if !served[ic.Object.Name] {
			continue // another controller's class: not our business
		}
		switch ic.Object.Spec.Controller {
		case ControllerLBC, ControllerL7LB:
		default:
			t.problem(ic.At("spec", "controller"), "", "IngressClass %s is served by l7lb but names controller %q; expected %s or %s",
				ic.Object.Name, ic.Object.Spec.Controller, ControllerLBC, ControllerL7LB)
		}
		if ic.Object.Spec.Parameters != nil {
			t.warn(ic.At("spec", "parameters"), "", "IngressClass parameters (IngressClassParams) are not yet honoured by l7lb; ignored")
		}
		if ic.Object.Annotations[annDefaultClass] == "true" {
			defaults = append(defaults, ic.Object.Name)
		}
	}

	var out []*manifest.Ingress
	for i := range t.objs.Ingresses {
		ing := &t.objs.Ingresses[i]
		class, ok := t.ingressClass(ing, defaults, served)
		if ok && served[class] {
			out = append(out, ing)
		}
	}
	slices.SortStableFunc(out, func(a, b *manifest.Ingress) int {
		return cmp.Or(cmp.Compare(a.Object.Namespace, b.Object.Namespace), cmp.Compare(a.Object.Name, b.Object.Name))
	})
	return out
}

// ingressClass returns the class an Ingress asks for: the legacy
// annotation (which LBC checks first), else spec.ingressClassName, else the
// one served IngressClass marked default in the files.
func (t *translator) ingressClass(ing *manifest.Ingress, defaults []string, served map[string]bool) (string, bool) {
	ann, hasAnn := ing.Object.Annotations[annIngressClass]
	spec := ing.Object.Spec.IngressClassName
	switch {
	case hasAnn && spec != nil && *spec != ann:
		if served[ann] || served[*spec] {
			t.problem(ing.At("metadata", "annotations", annIngressClass), annIngressClass,
				"class %q disagrees with spec.ingressClassName %q; set only one", ann, *spec)
		}
		return "", false
	case hasAnn:
		return ann, true
	case spec != nil:
		return *spec, true
	case len(defaults) == 1:
		return defaults[0], true
	}
	return "", false
}
