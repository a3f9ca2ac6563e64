package controller

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/l7lb/l7lb/internal/config"
)

// IngressGroup (alb.ingress.kubernetes.io/group.name): LBC turns the
// Ingresses of one group into one ALB. l7lb already serves every Ingress of
// its classes on one set of listeners, so what a group adds is LBC's
// conflict rule: an Exclusive annotation must be on one member only or the
// same on all of them. A conflict is an Event on every member and the group
// keeps its last good state (each member is served from its last version
// that translated).
const (
	annGroupName  = "alb.ingress.kubernetes.io/group.name"
	annGroupOrder = "alb.ingress.kubernetes.io/group.order"
)

// exclusiveAnnotations are LBC's Exclusive annotations (its annotation
// reference: "Exclusive: ... must be specified on a single Ingress or have
// the same value across all Ingresses within the IngressGroup").
var exclusiveAnnotations = []string{
	"scheme", "ip-address-type", "load-balancer-name", "subnets", "security-groups",
	"manage-backend-security-group-rules", "customer-owned-ipv4-pool", "ssl-policy",
	"ssl-redirect", "inbound-cidrs", "load-balancer-attributes", "wafv2-acl-arn",
	"waf-acl-id", "shield-advanced-protection", "mutual-authentication",
	"security-group-prefix-lists", "ipam-ipv4-pool-id", "enable-frontend-nlb",
}

var groupNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// checkGroupAnnotations validates one Ingress's group annotations as LBC
// does (name ≤63 characters of [a-z0-9.-], order an integer in
// -1000…1000).
func checkGroupAnnotations(ing *networkingv1.Ingress, o config.Origin) config.Problems {
	var ps config.Problems
	if name, ok := ing.Annotations[annGroupName]; ok && (len(name) > 63 || !groupNameRE.MatchString(name)) {
		ps = append(ps, config.Problem{Origin: o, Annotation: annGroupName,
			Message: fmt.Sprintf("group name %q must be 1-63 characters of a-z, 0-9, '-' and '.', starting and ending alphanumeric", name)})
	}
	if raw, ok := ing.Annotations[annGroupOrder]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || n < -1000 || n > 1000 {
			ps = append(ps, config.Problem{Origin: o, Annotation: annGroupOrder,
				Message: fmt.Sprintf("group order %q must be an integer from -1000 to 1000", raw)})
		}
	}
	return ps
}

// groupOf is the explicit group name, or "" for the implicit group of one.
func groupOf(ing *networkingv1.Ingress) string { return ing.Annotations[annGroupName] }

// groupConflicts returns, for each explicit group whose members disagree
// on an Exclusive annotation, the problem to report on every member.
// members are keyed "namespace/name".
func groupConflicts(members map[string]*networkingv1.Ingress) map[string]config.Problems {
	groups := map[string][]string{}
	for key, ing := range members {
		if g := groupOf(ing); g != "" {
			groups[g] = append(groups[g], key)
		}
	}
	out := map[string]config.Problems{}
	for g, keys := range groups {
		slices.Sort(keys)
		msg := conflict(g, keys, members)
		if msg == "" {
			continue
		}
		for _, k := range keys {
			out[k] = append(out[k], config.Problem{Origin: config.Origin{Object: "Ingress " + k}, Annotation: annGroupName, Message: msg})
		}
	}
	return out
}

// conflict describes the first Exclusive annotation the sorted members
// disagree on, or "".
func conflict(group string, keys []string, members map[string]*networkingv1.Ingress) string {
	for _, short := range exclusiveAnnotations {
		ann := "alb.ingress.kubernetes.io/" + short
		first, firstKey := "", ""
		for _, k := range keys {
			v, ok := members[k].Annotations[ann]
			if !ok {
				continue
			}
			if firstKey == "" {
				first, firstKey = v, k
				continue
			}
			if v != first {
				return fmt.Sprintf("IngressGroup %s: conflicting %s: %q on Ingress %s, %q on Ingress %s (Exclusive: set it on one member or the same on all); the group keeps its last good state",
					group, ann, first, firstKey, v, k)
			}
		}
	}
	return ""
}
