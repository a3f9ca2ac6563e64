// Package controller is l7lb's in-cluster mode: it watches Ingresses,
// IngressClasses, Services, EndpointSlices and TLS Secrets with client-go
// informers and turns every change into a new config.Snapshot through the
// very translation file mode uses (config/ingress.Translate), applied to the
// runtime atomically.
//
// Unlike file mode, a problem with one Ingress must not stop the others:
// each failing Ingress is served from its last version that translated
// (or not at all), and the problem becomes a Warning Event on it.
//
// Every replica serves; one leader (a coordination.k8s.io Lease) writes
// status.loadBalancer and Events, so replicas never fight over them.
package controller
