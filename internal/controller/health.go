package controller

import (
	"net/http"
)

// HealthHandler serves the Deployment's probes: /healthz (liveness: the
// process answers) and /readyz (readiness: caches synced and a snapshot is
// serving; false again once shutdown begins, so endpoints drop this pod
// before its listeners drain).
func (c *Controller) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n")) //nolint:errcheck // a probe that cannot read it fails anyway
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n")) //nolint:errcheck // as above
	})
	return mux
}
