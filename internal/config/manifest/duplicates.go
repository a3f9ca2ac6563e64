package manifest

import (
	"fmt"

	"github.com/l7lb/l7lb/internal/config"
)

// duplicates reports objects defined twice (same kind, namespace and name),
// in one file or across files: with the API server the second apply would
// silently replace the first, which in a file set is almost always a
// mistake worth stopping for.
func duplicates(o Objects) config.Problems {
	var ps config.Problems
	seen := map[string]config.Origin{}
	check := func(src Source) {
		id := src.Origin.Object
		if first, ok := seen[id]; ok {
			ps = append(ps, config.Problem{
				Origin:  src.Origin,
				Message: fmt.Sprintf("defined twice; first at %s", place(first)),
			})
			return
		}
		seen[id] = src.Origin
	}
	for _, x := range o.Ingresses {
		check(x.Source)
	}
	for _, x := range o.IngressClasses {
		check(x.Source)
	}
	for _, x := range o.EndpointSlices {
		check(x.Source)
	}
	for _, x := range o.Endpoints {
		check(x.Source)
	}
	for _, x := range o.Services {
		check(x.Source)
	}
	return ps
}

func place(o config.Origin) string {
	if o.Line > 0 {
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	}
	return o.File
}
