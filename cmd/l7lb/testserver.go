package main

import (
	"context"
	"io"

	"github.com/l7lb/l7lb/internal/fakemilvus"
)

func runTestServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fakemilvus.Command(ctx, args, stdout, stderr)
}
