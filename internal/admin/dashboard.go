package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// static is the dashboard: one page, a script and a style sheet, no
// external resources, so it works on an air-gapped admin network.
//
//go:embed static
var static embed.FS

func dashboard() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
		files.ServeHTTP(w, r)
	})
}
