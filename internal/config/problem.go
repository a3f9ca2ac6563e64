package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong (or worth a warning) in the input, with the
// place it was found. Its Error text names the file, line, object and
// annotation so that an operator can go straight to it.
type Problem struct {
	Origin     Origin `json:"origin"`
	Annotation string `json:"annotation,omitempty"`
	Message    string `json:"message"`
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.Origin.File != "" {
		b.WriteString(p.Origin.File)
		if p.Origin.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Origin.Line)
		}
		b.WriteString(": ")
	}
	if p.Origin.Object != "" {
		b.WriteString(p.Origin.Object)
		b.WriteString(": ")
	}
	if p.Annotation != "" {
		fmt.Fprintf(&b, "annotation %s: ", p.Annotation)
	}
	b.WriteString(p.Message)
	return b.String()
}

// Warning is a Problem that does not stop serving.
type Warning = Problem

// Problems is a list of errors found together; a configuration with any
// Problems is refused whole.
type Problems []Problem

func (ps Problems) Error() string {
	if len(ps) == 1 {
		return ps[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(ps))
	for _, p := range ps {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Err returns nil for an empty list, so callers can `return ps.Err()`.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}
