// Command l7lb-demo runs what is not the product: the demo (the seed end to
// end on loopback, driven by the Milvus Go SDK) and, as `l7lb-demo
// testserver`, the Milvus-compatible test cluster that tests and benchmarks
// start as a process. They live apart from cmd/l7lb so that the binary
// serving production traffic links neither the SDK, nor Milvus's pkg, nor
// the test double (cmd/l7lb/deps_test.go enforces it).
//
//	go run ./cmd/l7lb-demo [--keep-running] [--listen ADDR] [--rows N] [--log-level L] [--log-format F]
//	go run ./cmd/l7lb-demo testserver [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus"
)

func main() {
	// SIGINT and SIGTERM cancel ctx: the demo with --keep-running and the
	// test cluster stop on it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "testserver" {
		return fakemilvus.Command(ctx, args[1:], stdout, stderr)
	}
	return runDemo(ctx, args, stdout, stderr)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("l7lb-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: l7lb-demo [flags]             run the seed end to end on loopback: test Milvus, certificate, Ingress, SDK")
		fmt.Fprintln(stderr, "       l7lb-demo testserver [flags]  run a Milvus-compatible test cluster (for tests and benchmarks)")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	keep := fs.Bool("keep-running", false, "leave the cluster and l7lb running and print how to connect your own client")
	listen := fs.String("listen", "127.0.0.1:0", "where the demo's HTTPS listener (the Ingress's port 443) binds")
	rows := fs.Int("rows", 1000, "vectors to insert")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "l7lb-demo: unexpected arguments %q (the only subcommand is testserver)\n", fs.Args())
		return 2
	}
	log, err := logger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "l7lb-demo:", err)
		return 2
	}
	if err := demo.Run(ctx, demo.Options{Out: stdout, Log: log, Listen: *listen, KeepRunning: *keep, Rows: *rows}); err != nil {
		fmt.Fprintln(stderr, "l7lb-demo: FAILED:", err)
		return 1
	}
	return 0
}

// logger is cmd/l7lb's --log-level/--log-format, repeated here: the two
// commands share no package that would be worth making for ten lines.
func logger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}
