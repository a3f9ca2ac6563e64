package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/l7lb/l7lb/internal/truststore"
)

// runValidate checks files exactly as serve would load them: exit 0 when
// they would serve, 1 otherwise, every problem on its own line.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("l7lb validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf serveFlags
	sf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	store, err := openStore(sf.source.store)
	if err != nil {
		fmt.Fprintln(stderr, "l7lb validate:", err)
		return 1
	}
	// The trust stores are checked as serve checks them: a verify entry
	// of mutual-authentication naming one that is not there would make
	// serve refuse the configuration, so validate must refuse it too.
	trust, err := truststore.Open(store.Dir())
	if err != nil {
		fmt.Fprintln(stderr, "l7lb validate:", err)
		return 1
	}
	snap, warnings, err := sf.source.load(store.Has, trust.Has)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w.Error())
	}
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d listeners, %d target groups, %d warnings\n", len(snap.Listeners), len(snap.TargetGroups), len(warnings))
	return 0
}
