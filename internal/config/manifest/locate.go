package manifest

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/l7lb/l7lb/internal/config"
)

// At returns the Origin of a field inside the object: the same file and
// object, with the line of the deepest part of path that exists. Path
// elements are mapping keys (string) or sequence indexes (int), e.g.
// At("metadata", "annotations", "alb.ingress.kubernetes.io/scheme") or
// At("spec", "rules", 0, "http", "paths", 1).
//
// A missing field yields the line of its nearest existing parent, so a
// message about a defaulted value still points into the right object.
func (s Source) At(path ...any) config.Origin {
	o := s.Origin
	if line := lineOf(s.node, path); line > 0 {
		o.Line = line
	}
	return o
}

// AtFieldPath is At for a dotted field path as the JSON decoder reports it,
// e.g. "spec.rules[0].http.paths[0].backend.servce".
func (s Source) AtFieldPath(fieldPath string) config.Origin {
	return s.At(splitFieldPath(fieldPath)...)
}

func lineOf(n *yaml.Node, path []any) int {
	if n == nil {
		return 0
	}
	line := n.Line
	for len(path) > 0 {
		n = deref(n)
		var next *yaml.Node
		nextLine, consumed := 0, 1
		switch p := path[0].(type) {
		case int:
			if n.Kind == yaml.SequenceNode && p >= 0 && p < len(n.Content) {
				next = n.Content[p]
				nextLine = next.Line
			}
		case string:
			if n.Kind == yaml.MappingNode {
				// Keys such as annotation names contain dots, and a
				// dotted field path splits them; try the longest
				// re-joined key first.
				next, nextLine, consumed = lookupKey(n, path)
			}
		}
		if next == nil {
			return line
		}
		line = nextLine
		n = next
		path = path[consumed:]
	}
	return line
}

// lookupKey finds the value for the longest run of leading string elements
// of path that, joined with ".", is a key of mapping m. It returns the value,
// the key's line (a block value starts on the line after its key, but the
// key is what a reader looks for) and how many path elements it used.
func lookupKey(m *yaml.Node, path []any) (*yaml.Node, int, int) {
	run := 0
	for run < len(path) {
		if _, ok := path[run].(string); !ok {
			break
		}
		run++
	}
	for k := run; k >= 1; k-- {
		parts := make([]string, k)
		for i := range k {
			parts[i] = path[i].(string)
		}
		key := strings.Join(parts, ".")
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1], m.Content[i].Line, k
			}
		}
	}
	return nil, 0, 1
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return n.Content[0]
	}
	return n
}

// splitFieldPath turns "a.b[2].c" into ["a", "b", 2, "c"].
func splitFieldPath(p string) []any {
	var out []any
	for _, part := range strings.Split(p, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				out = append(out, part)
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			j := strings.IndexByte(part[i:], ']')
			if j < 0 {
				out = append(out, part[i:])
				break
			}
			if n, err := strconv.Atoi(part[i+1 : i+j]); err == nil {
				out = append(out, n)
			}
			part = part[i+j+1:]
		}
	}
	return out
}
