package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/l7lb/l7lb/internal/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("l7lb demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.Bool("keep-running", false, "leave the cluster and l7lb running and print how to connect your own client")
	listen := fs.String("listen", "127.0.0.1:0", "where the demo's HTTPS listener (the Ingress's port 443) binds")
	rows := fs.Int("rows", 1000, "vectors to insert")
	var lf logFlags
	fs.StringVar(&lf.level, "log-level", "warn", "debug, info, warn or error")
	fs.StringVar(&lf.format, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "l7lb demo:", err)
		return 2
	}
	if err := demo.Run(ctx, demo.Options{Out: stdout, Log: log, Listen: *listen, KeepRunning: *keep, Rows: *rows}); err != nil {
		fmt.Fprintln(stderr, "l7lb demo: FAILED:", err)
		return 1
	}
	return 0
}
