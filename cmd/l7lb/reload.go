package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/runtime"
	"github.com/l7lb/l7lb/internal/truststore"
)

// reloader rebuilds the whole configuration on SIGHUP or when one of the
// -f files changes: validated and built completely, then swapped in; a
// bad new configuration is refused with its problems logged, and the
// running one keeps serving.
type reloader struct {
	source *sourceFlags
	store  *certstore.Store
	trust  *truststore.Store
	rt     *runtime.Runtime
	log    *slog.Logger
	// onResult, when set, hears about every reload (the admin API).
	onResult func(ok bool, err error)
	stamps   map[string]fileStamp
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

func (r *reloader) stamp() map[string]fileStamp {
	out := map[string]fileStamp{}
	// The stores too: an import, a re-import (cert import
	// --certificate-arn) or a trust store change renames an entry in
	// their directory, which changes its modification time; the reload
	// then loads the new certificate for new handshakes.
	files := append([]string{}, r.source.files.values...)
	if r.store != nil {
		files = append(files, r.store.Dir())
	}
	if r.trust != nil {
		files = append(files, r.trust.Dir())
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			out[f] = fileStamp{fi.Size(), fi.ModTime()}
		} else {
			out[f] = fileStamp{size: -1}
		}
	}
	return out
}

func (r *reloader) changed() bool {
	now := r.stamp()
	for f, s := range now {
		if r.stamps[f] != s {
			r.stamps = now
			return true
		}
	}
	return false
}

// run watches until ctx ends. Files are polled every poll interval: it
// works on every filesystem, including the ConfigMap volumes Kubernetes
// updates by swapping symlinks.
func (r *reloader) run(ctx context.Context, poll time.Duration) {
	r.stamps = r.stamp()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.stamps = r.stamp()
			r.reload("SIGHUP")
		case <-t.C:
			if r.changed() {
				r.reload("a configuration file or a store changed")
			}
		}
	}
}

func (r *reloader) reload(why string) {
	var knownTrust func(string) bool
	if r.trust != nil {
		knownTrust = r.trust.Has
	}
	snap, warnings, err := r.source.load(r.store.Has, knownTrust)
	for _, w := range warnings {
		r.log.Warn(w.Error())
	}
	if err == nil {
		err = r.rt.Apply(snap)
	}
	if err != nil {
		r.log.Error("configuration refused; still serving the previous one", "trigger", why, "error", err)
	} else {
		r.log.Info("configuration reloaded", "trigger", why, "listeners", len(snap.Listeners), "targetGroups", len(snap.TargetGroups))
	}
	if r.onResult != nil {
		r.onResult(err == nil, err)
	}
}
