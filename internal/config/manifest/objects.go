package manifest

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"gopkg.in/yaml.v3"

	"github.com/l7lb/l7lb/internal/config"
)

// Objects is everything read from a set of files, in file order and, within
// a file, in document order. Objects is a plain value: the translator reads
// it and never modifies it.
type Objects struct {
	Ingresses      []Ingress
	IngressClasses []IngressClass
	EndpointSlices []EndpointSlice
	Endpoints      []Endpoints
	Services       []Service
}

// Source records where an object was read from. Its zero value is valid
// (objects built in code have no file), and At then returns Origin as is.
type Source struct {
	// Origin names the file, the line the object starts on and
	// "Kind namespace/name".
	Origin config.Origin
	// node is the object's YAML mapping, kept to find the line of any
	// field later. It is never modified.
	node *yaml.Node
}

// Ingress is a networking.k8s.io/v1 Ingress and where it came from.
type Ingress struct {
	Source
	Object networkingv1.Ingress
}

// IngressClass is a networking.k8s.io/v1 IngressClass and where it came from.
type IngressClass struct {
	Source
	Object networkingv1.IngressClass
}

// EndpointSlice is a discovery.k8s.io/v1 EndpointSlice and where it came from.
type EndpointSlice struct {
	Source
	Object discoveryv1.EndpointSlice
}

// Endpoints is a v1 Endpoints object and where it came from. The API is
// deprecated in Kubernetes 1.33 but still what older tooling emits.
type Endpoints struct {
	Source
	Object corev1.Endpoints //nolint:staticcheck // deliberately supported legacy API
}

// Service is a v1 Service and where it came from.
type Service struct {
	Source
	Object corev1.Service
}

// Len is the number of objects of all kinds.
func (o Objects) Len() int {
	return len(o.Ingresses) + len(o.IngressClasses) + len(o.EndpointSlices) + len(o.Endpoints) + len(o.Services)
}

func (o *Objects) appendAll(p Objects) {
	o.Ingresses = append(o.Ingresses, p.Ingresses...)
	o.IngressClasses = append(o.IngressClasses, p.IngressClasses...)
	o.EndpointSlices = append(o.EndpointSlices, p.EndpointSlices...)
	o.Endpoints = append(o.Endpoints, p.Endpoints...)
	o.Services = append(o.Services, p.Services...)
}
