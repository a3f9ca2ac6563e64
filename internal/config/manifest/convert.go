package manifest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"
)

// maxAliasDepth bounds alias expansion so that a "billion laughs" document
// cannot make a config reload hang or exhaust memory.
const maxAliasDepth = 32

// lineError is a conversion problem at a YAML line.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// toJSONValue converts a YAML node into the value encoding/json would have
// produced for the equivalent JSON text, so that the Kubernetes types can be
// decoded with their JSON tags and custom unmarshalers (IntOrString,
// Quantity, Time) exactly as the API server would.
func toJSONValue(n *yaml.Node, depth int) (any, error) {
	if depth > maxAliasDepth {
		return nil, &lineError{n.Line, "aliases nested too deeply"}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return toJSONValue(n.Content[0], depth)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, &lineError{n.Line, "alias without anchor"}
		}
		return toJSONValue(n.Alias, depth+1)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := toJSONValue(c, depth)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		return mappingToJSON(n, depth)
	case yaml.ScalarNode:
		return scalarToJSON(n)
	default:
		return nil, &lineError{n.Line, "unsupported YAML node"}
	}
}

func mappingToJSON(n *yaml.Node, depth int) (map[string]any, error) {
	out := make(map[string]any, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			if err := mergeInto(out, v, depth); err != nil {
				return nil, err
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return nil, &lineError{k.Line, "mapping key is not a scalar"}
		}
		// The API server rejects duplicate keys; yaml.v3 nodes keep them,
		// so check here rather than let the last one win silently.
		if first, dup := seen[k.Value]; dup {
			return nil, &lineError{k.Line, fmt.Sprintf("duplicate key %q (first at line %d)", k.Value, first)}
		}
		seen[k.Value] = k.Line
		val, err := toJSONValue(v, depth)
		if err != nil {
			return nil, err
		}
		out[k.Value] = val
	}
	return out, nil
}

// mergeInto applies a YAML merge key ("<<: *anchor" or a list of anchors);
// keys already present win, as the YAML merge spec says.
func mergeInto(out map[string]any, v *yaml.Node, depth int) error {
	srcs := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		srcs = v.Content
	}
	for _, s := range srcs {
		m, err := toJSONValue(s, depth+1)
		if err != nil {
			return err
		}
		mm, ok := m.(map[string]any)
		if !ok {
			return &lineError{s.Line, "merge key needs a mapping"}
		}
		for k, val := range mm {
			if _, exists := out[k]; !exists {
				out[k] = val
			}
		}
	}
	return nil
}

func scalarToJSON(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, &lineError{n.Line, err.Error()}
		}
		return b, nil
	case "!!int":
		// Decode handles 0x, 0o and sign forms; json.Number keeps the
		// exact digits for int64 fields.
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(strconv.FormatInt(i, 10)), nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return json.Number(strconv.FormatUint(u, 10)), nil
		}
		return nil, &lineError{n.Line, fmt.Sprintf("integer %q out of range", n.Value)}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, &lineError{n.Line, err.Error()}
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, &lineError{n.Line, fmt.Sprintf("%q cannot be represented in JSON", n.Value)}
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	default:
		// !!str, !!timestamp, !!binary and custom tags: Kubernetes
		// fields that accept them are strings.
		return n.Value, nil
	}
}
