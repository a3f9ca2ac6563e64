package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// stringList is a repeatable flag; commas also separate values when split
// is set.
type stringList struct {
	values []string
	split  bool
}

func (s *stringList) String() string { return strings.Join(s.values, ",") }

func (s *stringList) Set(v string) error {
	if !s.split {
		s.values = append(s.values, v)
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			s.values = append(s.values, p)
		}
	}
	return nil
}

// logFlags are shared by the long-running commands.
type logFlags struct {
	level  string
	format string
}

func (lf *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lf.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", lf.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch lf.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", lf.format)
	}
}

// printUsageError reports a usage error (exit 2) as "l7lb COMMAND: err".
func printUsageError(stderr io.Writer, fs *flag.FlagSet, err error) {
	fmt.Fprintln(stderr, fs.Name()+":", err)
}
