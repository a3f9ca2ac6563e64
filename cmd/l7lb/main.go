// Command l7lb is a Layer-7 load balancer for Milvus clusters: it terminates
// TLS, speaks HTTP/2 and balances every gRPC call across the Milvus proxies,
// configured by the Kubernetes Ingress that would have created an AWS ALB.
//
// This binary is only the product. The demo and the test cluster are
// cmd/l7lb-demo, so that neither the Milvus SDK nor the test double is
// linked into what serves production traffic (deps_test.go checks it).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "serve the Ingress objects in -f files", runServe},
		{"validate", "check -f files the way serve would, without serving", runValidate},
		{"cert", "local certificate store: import (and re-import), list, describe, delete", runCert},
		{"truststore", "local trust stores for mutual TLS: create, list, describe, modify, delete", runTrustStore},
		{"controller", "the in-cluster Ingress controller: watch Ingresses, serve them, write their status", runController},
		{"status", "show a running l7lb's Ingresses and targets (from its admin API)", runStatus},
		{"version", "print the version", runVersion},
	}
}

func main() {
	// SIGINT and SIGTERM cancel ctx; each command decides how to wind down.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "l7lb: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: l7lb <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'l7lb <command> -h' for a command's flags. The demo and the test cluster are go run ./cmd/l7lb-demo.")
}
