// Package manifest reads Kubernetes YAML (or JSON) files into the typed
// objects that l7lb's Ingress translator understands, remembering where each
// object came from so that every later message can name file, line and
// object.
//
// Only the kinds the translator uses are decoded: networking.k8s.io/v1
// Ingress and IngressClass, discovery.k8s.io/v1 EndpointSlice, and v1
// Endpoints and Service (a v1 List is unpacked). Any other kind is skipped
// with a warning, so that `helm template` or `kubectl get -o yaml` output can
// be fed in whole.
//
// Decoding is strict, like `kubectl apply --validate=strict`: an unknown or
// duplicated field is a Problem naming the field and its line, because a
// misspelt field in a load balancer config silently changes routing.
package manifest
