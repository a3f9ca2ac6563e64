package ingress

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"

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
	// LBC evaluates an IngressGroup's Ingresses by group.order (lower
	// first, default 0), then namespace/name.
	order := map[*manifest.Ingress]int{}
	for _, ing := range out {
		order[ing] = t.groupOrder(ing)
		t.checkGroupName(ing)
	}
	slices.SortStableFunc(out, func(a, b *manifest.Ingress) int {
		return cmp.Or(cmp.Compare(order[a], order[b]),
			cmp.Compare(a.Object.Namespace, b.Object.Namespace), cmp.Compare(a.Object.Name, b.Object.Name))
	})
	return out
}

const (
	annGroupName  = albPrefix + "group.name"
	annGroupOrder = albPrefix + "group.order"
)

var groupNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

// groupOrder reads alb.ingress.kubernetes.io/group.order (-1000..1000).
func (t *translator) groupOrder(ing *manifest.Ingress) int {
	v, ok := ing.Object.Annotations[annGroupOrder]
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < -1000 || n > 1000 {
		t.problem(ing.At("metadata", "annotations", annGroupOrder), annGroupOrder, "invalid value %q; expected an integer from -1000 to 1000", v)
		return 0
	}
	return n
}

// checkGroupName validates alb.ingress.kubernetes.io/group.name. Every
// Ingress served together shares l7lb's listeners, as one IngressGroup.
func (t *translator) checkGroupName(ing *manifest.Ingress) {
	v, ok := ing.Object.Annotations[annGroupName]
	if ok && (len(v) > 63 || !groupNameRE.MatchString(v)) {
		t.problem(ing.At("metadata", "annotations", annGroupName), annGroupName,
			"invalid value %q; expected 1-63 characters of a-z, 0-9, '-' and '.', starting and ending alphanumeric", v)
	}
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
