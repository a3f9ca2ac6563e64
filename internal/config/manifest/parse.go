package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/l7lb/l7lb/internal/config"
)

// LoadFiles reads each path (a file, or a directory whose *.yaml, *.yml and
// *.json files are read in name order) and returns the objects of all of
// them. The error, if any, is config.Problems listing every problem found in
// every file, so that one run shows them all; objects from files without
// problems are still returned for tools that want to show them, but a
// caller must not serve a configuration when the error is non-nil.
func LoadFiles(paths ...string) (Objects, []config.Warning, error) {
	var (
		all      Objects
		warnings []config.Warning
		problems config.Problems
	)
	files, ps := expandPaths(paths)
	problems = append(problems, ps...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			problems = append(problems, config.Problem{
				Origin:  config.Origin{File: f},
				Message: fmt.Sprintf("cannot read manifest: %v", err),
			})
			continue
		}
		objs, ws, ps := parse(f, data)
		all.appendAll(objs)
		warnings = append(warnings, ws...)
		problems = append(problems, ps...)
	}
	problems = append(problems, duplicates(all)...)
	return all, warnings, problems.Err()
}

// Parse reads one file's content; name is used in origins and messages.
// Errors are as for LoadFiles.
func Parse(name string, data []byte) (Objects, []config.Warning, error) {
	objs, ws, ps := parse(name, data)
	ps = append(ps, duplicates(objs)...)
	return objs, ws, ps.Err()
}

func expandPaths(paths []string) ([]string, config.Problems) {
	var (
		files    []string
		problems config.Problems
	)
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			problems = append(problems, config.Problem{Origin: config.Origin{File: p}, Message: fmt.Sprintf("cannot read manifest: %v", err)})
			continue
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			problems = append(problems, config.Problem{Origin: config.Origin{File: p}, Message: fmt.Sprintf("cannot read manifest directory: %v", err)})
			continue
		}
		var names []string
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					names = append(names, filepath.Join(p, e.Name()))
				}
			}
		}
		slices.Sort(names)
		files = append(files, names...)
	}
	return files, problems
}

func parse(name string, data []byte) (Objects, []config.Warning, config.Problems) {
	var (
		objs     Objects
		warnings []config.Warning
		problems config.Problems
	)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The YAML stream cannot be resynchronised after a syntax
			// error, so the rest of this file is not read.
			problems = append(problems, yamlProblem(name, err))
			break
		}
		root := deref(&doc)
		if isEmpty(root) {
			continue
		}
		d := decoder{file: name, objs: &objs}
		d.object(root, 0)
		warnings = append(warnings, d.warnings...)
		problems = append(problems, d.problems...)
	}
	return objs, warnings, problems
}

func isEmpty(n *yaml.Node) bool {
	switch n.Kind {
	case 0:
		return true
	case yaml.DocumentNode:
		return len(n.Content) == 0
	case yaml.ScalarNode:
		return n.ShortTag() == "!!null"
	}
	return false
}

var yamlLine = regexp.MustCompile(`line (\d+):\s*`)

// yamlParserErrors are the messages of yaml.v3's parser (as opposed to its
// scanner). yaml.v3 v3.0.1 reports their line 0-based (it adds 1 only for
// scanner errors), and for errors inside a collection the line is that of
// the collection's start, so +1 gives the 1-based line where the broken
// construct begins.
var yamlParserErrors = []string{
	"did not find expected",
	"found duplicate %",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlProblem turns a yaml.v3 error ("yaml: line 7: did not find expected
// key") into a Problem with the line in the Origin rather than the text.
func yamlProblem(file string, err error) config.Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := config.Problem{Origin: config.Origin{File: file}}
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		p.Origin.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		msg = msg[:m[0]] + msg[m[1]:]
		for _, pe := range yamlParserErrors {
			if strings.HasPrefix(msg, pe) {
				p.Origin.Line++
				break
			}
		}
	}
	p.Message = "invalid YAML: " + msg
	return p
}
