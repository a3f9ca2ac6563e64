package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/grpcwire"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
)

// fixedResponse answers from the rule's fixed-response action: a gRPC
// request gets the gRPC status its HTTP code maps to, with the body as
// grpc-message (trailers-only); anything else gets the HTTP response.
func (h *Handler) fixedResponse(w http.ResponseWriter, r *http.Request, rule *route.Rule[*targetgroup.Group], isGRPC bool) {
	fr := rule.Fixed
	if rec := recordOf(r); rec != nil {
		rec.Rule = rule.Name
	}
	if isGRPC {
		writeGRPCError(w, grpcwire.CodeForHTTPStatus(fr.StatusCode), fr.MessageBody)
		return
	}
	w.Header().Set("Content-Type", fr.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(fr.MessageBody)))
	w.WriteHeader(fr.StatusCode)
	if r.Method != http.MethodHead {
		w.Write([]byte(fr.MessageBody)) //nolint:errcheck // the client went away
	}
}

// redirect answers from the rule's redirect action. gRPC clients do not
// follow redirects, so a gRPC request gets UNIMPLEMENTED (the method is
// not served here for gRPC) with the place the redirect points to.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, rule *route.Rule[*targetgroup.Group], host string, isGRPC bool) {
	if rec := recordOf(r); rec != nil {
		rec.Rule = rule.Name
	}
	loc := RedirectLocation(rule.Redirect, h.proto(), host, h.portText, r.URL.Path, r.URL.RawQuery)
	if isGRPC {
		writeGRPCError(w, codes.Unimplemented, fmt.Sprintf(
			"l7lb: rule %s redirects HTTP requests (to %s); gRPC clients do not follow redirects: connect to the new address", rule.Name, loc))
		return
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(rule.Redirect.StatusCode)
}

// RedirectLocation builds the Location of a redirect as the ALB does:
// each component replaces the placeholders #{protocol}, #{host}, #{port},
// #{path} (the request path without its leading "/") and #{query} with
// the request's values. The port is always written, as the ALB writes it.
func RedirectLocation(rd *config.Redirect, proto, host, port, path, query string) string {
	rep := strings.NewReplacer(
		"#{protocol}", proto, "#{host}", host, "#{port}", port,
		"#{path}", strings.TrimPrefix(path, "/"), "#{query}", query)
	scheme := strings.ToLower(rep.Replace(rd.Protocol))
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(rep.Replace(rd.Host))
	b.WriteString(":")
	b.WriteString(rep.Replace(rd.Port))
	b.WriteString(rep.Replace(rd.Path))
	if q := rep.Replace(rd.Query); q != "" {
		b.WriteString("?")
		b.WriteString(q)
	}
	return b.String()
}

// remoteAddr is the client's address for source-ip conditions.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
