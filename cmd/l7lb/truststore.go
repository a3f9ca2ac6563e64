package main

import (
	"context"
	"io"

	"github.com/l7lb/l7lb/internal/truststore"
)

// runTrustStore is `l7lb truststore ...`: the local twin of the ALB's
// trust stores; the logic lives in truststore.Command.
func runTrustStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return truststore.Command(ctx, args, stdout, stderr)
}
