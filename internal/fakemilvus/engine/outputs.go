package engine

import (
	"sort"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// outputPlan says which stored fields a Query or Search returns and which
// names the reply lists as output fields.
type outputPlan struct {
	positions []int    // schema positions, in schema order
	names     []string // output_fields of the reply
}

// planOutputs expands "*" to every field and routes names unknown to the
// schema to the $meta column when the schema is dynamic, as Milvus does.
// Query always returns the primary key; Search only when asked.
func (c *collection) planOutputs(requested []string, withPK bool) (outputPlan, error) {
	want := make(map[int]bool)
	var dynamicNames []string
	metaByName := false
	for _, raw := range requested {
		name := strings.TrimSpace(raw)
		switch pos, _ := c.field(name); {
		case name == "":
		case name == "*":
			for i := range c.schema.Fields {
				want[i] = true
			}
			metaByName = true
		case pos >= 0:
			want[pos] = true
			metaByName = metaByName || pos == c.dynPos
		case c.dynPos >= 0:
			want[c.dynPos] = true
			dynamicNames = append(dynamicNames, name)
		default:
			return outputPlan{}, errInvalid("field %s not exist", name)
		}
	}
	if withPK {
		want[c.pkPos] = true
	}
	var plan outputPlan
	for pos := range want {
		plan.positions = append(plan.positions, pos)
	}
	sort.Ints(plan.positions)
	for _, pos := range plan.positions {
		// $meta fetched only to serve dynamic keys is not listed by name, so
		// the SDK turns it into one column per requested key.
		if pos == c.dynPos && !metaByName {
			continue
		}
		plan.names = append(plan.names, c.schema.Fields[pos].Name)
	}
	plan.names = append(plan.names, dynamicNames...)
	return plan, nil
}

func (c *collection) encodeOutputs(plan outputPlan, rows []row) []*schemapb.FieldData {
	out := make([]*schemapb.FieldData, 0, len(plan.positions))
	for _, pos := range plan.positions {
		out = append(out, encodeColumn(c.schema.Fields[pos], rows, pos))
	}
	return out
}
