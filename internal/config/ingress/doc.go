// Package ingress translates Kubernetes Ingress objects carrying AWS Load
// Balancer Controller (LBC) annotations into an l7lb config.Snapshot.
//
// Translate is pure: no I/O, no clock, no randomness, and its output order
// depends only on its input. The same function serves file mode and (later)
// cluster mode.
//
// # Scope
//
// All selected Ingresses form one balancer, like one LBC IngressGroup:
// listeners are the union of their listen-ports, merged by port.
//
// # Rule precedence
//
// Rules follow the LBC model builder (pkg/ingress/model_build_listener_rules.go,
// buildListenerRules and sortIngressPaths, LBC >= v2.4.3; also stated in the
// LBC "Ingress specification" guide):
//
//  1. Ingresses by group.order (lower first, default 0), then in
//     namespace/name order, as LBC sorts an IngressGroup's members.
//  2. Within an Ingress, spec.rules in spec order.
//  3. Within one rule's paths: Exact paths first, then Prefix paths longest
//     first (stable, so equal lengths keep spec order), then
//     ImplementationSpecific (or missing pathType) paths in spec order. LBC
//     sorts per spec.rules entry, not across the whole Ingress, and so does
//     l7lb.
//  4. spec.defaultBackend last: LBC makes it the listener's default action,
//     evaluated after every rule. At most one Ingress per listener may have
//     one (LBC: "multiple ingress defined default backend").
//
// The first matching rule wins.
//
// # ImplementationSpecific paths
//
// For LBC an ImplementationSpecific path is an ALB path-pattern: case
// sensitive, "*" and "?" wildcards, no wildcard means an exact match. l7lb
// keeps that meaning where the model can express it exactly or nearly:
//
//   - "" , "*" and "/*" match everything: Prefix "/".
//   - a path without wildcards matches only itself: Exact (with a warning,
//     since users coming from other controllers often expect a prefix).
//   - "/a/b/*" becomes Prefix "/a/b/" (with a warning: the ALB pattern
//     does not match "/a/b" itself, the Prefix does).
//   - any other wildcard use is a Problem rather than a silently different
//     match.
//
// Exact and Prefix paths must start with "/" and may not contain wildcards
// (LBC rejects those too).
package ingress
