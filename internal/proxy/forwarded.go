package proxy

import (
	"net/http"
	"strings"
)

func (h *Handler) setForwarded(out http.Header, r *http.Request) {
	ip := clientIP(r)
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	out["X-Forwarded-For"] = []string{ip}
	out["X-Forwarded-Proto"] = []string{h.proto()}
	out["X-Forwarded-Port"] = []string{h.portText}
}
