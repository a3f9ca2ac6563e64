package proxy

import (
	"net/http"
	"strings"

	"github.com/l7lb/l7lb/internal/mtls"
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

// setMTLS drops the client's own X-Amzn-Mtls-* headers (a client must not
// claim a certificate it never presented) and adds the connection's, as
// the listener computed them after the handshake.
func setMTLS(out http.Header, r *http.Request) {
	for k := range out {
		if mtls.IsHeader(k) {
			delete(out, k)
		}
	}
	for _, h := range mtls.FromContext(r.Context()) {
		out[http.CanonicalHeaderKey(h.Name)] = []string{h.Value}
	}
}
