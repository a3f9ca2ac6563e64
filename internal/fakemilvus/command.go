package fakemilvus

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// Command runs a cluster as its own process ("l7lb-demo testserver") until ctx is
// done, then stops every replica gracefully. It returns the exit code.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	replicas := fs.Int("replicas", 3, "number of replica listeners (Milvus proxies)")
	host := fs.String("host", "127.0.0.1", "host to listen on")
	basePort := fs.Int("base-port", 19530, "port of replica-0; replica i listens on base+i (0 = random ports)")
	control := fs.String("control", "127.0.0.1:19500", "control endpoint address (empty = none)")
	maxRecv := fs.Int("max-recv-bytes", DefaultMaxRecvMsgSize, "gRPC max receive message size")
	grace := fs.Duration("stop-grace", DefaultStopGrace, "how long a graceful stop waits for in-flight RPCs")
	verbose := fs.Bool("v", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "testserver: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *replicas < 1 || *basePort < 0 || *basePort+*replicas-1 > 65535 || *maxRecv < 1 {
		fmt.Fprintln(stderr, "testserver: need --replicas >= 1, --max-recv-bytes >= 1, and ports within 0..65535")
		return 2
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts := Options{Replicas: *replicas, Host: *host, Logger: logger, MaxRecvMsgSize: *maxRecv, StopGrace: *grace}
	if *basePort > 0 {
		for i := 0; i < *replicas; i++ {
			opts.Ports = append(opts.Ports, *basePort+i)
		}
	}
	c, err := Start(opts)
	if err != nil {
		fmt.Fprintf(stderr, "testserver: %v\n", err)
		return 1
	}
	defer c.Close()
	for _, r := range c.Replicas() {
		fmt.Fprintf(stdout, "%s %s\n", r.Name(), r.Addr())
	}
	if *control != "" {
		lis, err := c.ServeControl(*control)
		if err != nil {
			fmt.Fprintf(stderr, "testserver: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "control %s\n", lis.Addr())
	}

	<-ctx.Done()
	// Stop like a Milvus pod being deleted: GOAWAY, drain, then exit.
	var wg sync.WaitGroup
	for _, r := range c.Replicas() {
		wg.Add(1)
		go func() { defer wg.Done(); r.Stop() }()
	}
	wg.Wait()
	return 0
}
