package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/l7lb/l7lb/internal/config"
)

// kindKey identifies a supported type.
type kindKey struct{ apiVersion, kind string }

var (
	kIngress       = kindKey{"networking.k8s.io/v1", "Ingress"}
	kIngressClass  = kindKey{"networking.k8s.io/v1", "IngressClass"}
	kEndpointSlice = kindKey{"discovery.k8s.io/v1", "EndpointSlice"}
	kEndpoints     = kindKey{"v1", "Endpoints"}
	kService       = kindKey{"v1", "Service"}
	kList          = kindKey{"v1", "List"}
)

// clusterScoped kinds have no namespace.
var clusterScoped = map[kindKey]bool{kIngressClass: true}

// decoder decodes the documents of one file.
type decoder struct {
	file     string
	objs     *Objects
	warnings []config.Warning
	problems config.Problems
}

func (d *decoder) problem(o config.Origin, format string, args ...any) {
	d.problems = append(d.problems, config.Problem{Origin: o, Message: fmt.Sprintf(format, args...)})
}

// object decodes one object node (a document, or an item of a List).
func (d *decoder) object(n *yaml.Node, depth int) {
	n = deref(n)
	src := Source{Origin: config.Origin{File: d.file, Line: n.Line}, node: n}
	if n.Kind != yaml.MappingNode {
		d.problem(src.Origin, "a Kubernetes object must be a YAML mapping")
		return
	}
	v, err := toJSONValue(n, 0)
	if err != nil {
		var le *lineError
		if errors.As(err, &le) {
			src.Origin.Line = le.line
			d.problem(src.Origin, "invalid YAML: %s", le.msg)
			return
		}
		d.problem(src.Origin, "invalid YAML: %v", err)
		return
	}
	m := v.(map[string]any)
	key := kindKey{str(m["apiVersion"]), str(m["kind"])}
	src.Origin.Object = objectName(key, m)
	if key.apiVersion == "" || key.kind == "" {
		d.problem(src.Origin, "apiVersion and kind are required")
		return
	}
	if key == kList {
		d.list(src, depth)
		return
	}
	data, err := json.Marshal(m)
	if err != nil {
		d.problem(src.Origin, "cannot convert to JSON: %v", err)
		return
	}
	switch key {
	case kIngress:
		var o networkingv1.Ingress
		if d.decode(src, key, data, &o.ObjectMeta, &o) {
			d.objs.Ingresses = append(d.objs.Ingresses, Ingress{Source: src, Object: o})
		}
	case kIngressClass:
		var o networkingv1.IngressClass
		if d.decode(src, key, data, &o.ObjectMeta, &o) {
			d.objs.IngressClasses = append(d.objs.IngressClasses, IngressClass{Source: src, Object: o})
		}
	case kEndpointSlice:
		var o discoveryv1.EndpointSlice
		if d.decode(src, key, data, &o.ObjectMeta, &o) {
			d.objs.EndpointSlices = append(d.objs.EndpointSlices, EndpointSlice{Source: src, Object: o})
		}
	case kEndpoints:
		var o corev1.Endpoints //nolint:staticcheck // deliberately supported legacy API
		if d.decode(src, key, data, &o.ObjectMeta, &o) {
			d.objs.Endpoints = append(d.objs.Endpoints, Endpoints{Source: src, Object: o})
		}
	case kService:
		var o corev1.Service
		if d.decode(src, key, data, &o.ObjectMeta, &o) {
			d.objs.Services = append(d.objs.Services, Service{Source: src, Object: o})
		}
	default:
		if key.kind == "Ingress" {
			// An Ingress in a removed API version was surely meant to be
			// served; skipping it with a warning would drop routes.
			d.problem(src.Origin, "apiVersion %s of Ingress is not supported; use networking.k8s.io/v1", key.apiVersion)
			return
		}
		d.warnings = append(d.warnings, config.Warning{
			Origin:  src.Origin,
			Message: fmt.Sprintf("%s %s is not used by l7lb; skipped", key.apiVersion, key.kind),
		})
	}
}

// list unpacks a v1 List (kubectl get -o yaml output) item by item, so
// that each item keeps its own line.
func (d *decoder) list(src Source, depth int) {
	if depth > 0 {
		d.problem(src.Origin, "a List inside a List is not supported")
		return
	}
	items := lookupNode(src.node, "items")
	if items == nil {
		return
	}
	if items.Kind != yaml.SequenceNode {
		d.problem(src.At("items"), "items must be a list")
		return
	}
	for _, it := range items.Content {
		d.object(it, depth+1)
	}
}

// decode decodes data strictly into obj and checks the metadata. It reports
// false (after recording problems) when obj must not be used.
func (d *decoder) decode(src Source, key kindKey, data []byte, meta interface {
	GetName() string
	GetNamespace() string
	SetNamespace(string)
}, obj any) bool {
	strictErrs, err := sigsjson.UnmarshalStrict(data, obj)
	if err != nil {
		d.problems = append(d.problems, typeProblem(src, err))
		return false
	}
	ok := true
	for _, e := range strictErrs {
		var fe sigsjson.FieldError
		if errors.As(e, &fe) {
			// e.g. `unknown field "spec.rules[0].htttp"`.
			d.problem(src.AtFieldPath(fe.FieldPath()), "%s", e.Error())
		} else {
			d.problem(src.Origin, "%v", e)
		}
		ok = false
	}
	if meta.GetName() == "" {
		d.problem(src.At("metadata"), "metadata.name is required")
		ok = false
	}
	if !clusterScoped[key] && meta.GetNamespace() == "" {
		// kubectl apply -f would use the context's namespace; a file
		// has no context, so use the API server's own default.
		meta.SetNamespace("default")
	}
	return ok
}

var typeErrField = regexp.MustCompile(`Go struct field [^ .]+\.(\S+) of type`)

// typeProblem locates a decoding error such as `json: cannot unmarshal
// number into Go struct field ObjectMeta.metadata.annotations of type
// string`.
func typeProblem(src Source, err error) config.Problem {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	o := src.Origin
	if m := typeErrField.FindStringSubmatch(msg); m != nil {
		o = src.AtFieldPath(m[1])
	}
	return config.Problem{Origin: o, Message: "invalid object: " + msg}
}

// lookupNode returns the value of key in mapping n, or nil.
func lookupNode(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return deref(n.Content[i+1])
		}
	}
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// objectName renders "Kind namespace/name" (or "Kind name" for
// cluster-scoped kinds) from the raw map, before typed decoding, so that
// even an object that fails to decode is named in messages.
func objectName(key kindKey, m map[string]any) string {
	kind := key.kind
	if kind == "" {
		kind = "object"
	}
	meta, _ := m["metadata"].(map[string]any)
	name, ns := str(meta["name"]), str(meta["namespace"])
	if name == "" {
		return kind
	}
	if clusterScoped[key] {
		return kind + " " + name
	}
	if ns == "" {
		ns = "default"
	}
	return kind + " " + ns + "/" + name
}
