package main

import (
	"context"
	"io"

	"github.com/l7lb/l7lb/internal/certstore"
)

// runCert is `l7lb cert ...`; args are the words after "cert". The logic
// lives in certstore.Command so it can be tested without this package.
func runCert(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return certstore.Command(ctx, args, stdout, stderr)
}
