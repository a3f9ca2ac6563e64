package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/runtime"
)

func (s *Server) routeAPI(mux *http.ServeMux) {
	get := func(path string, f func() any) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, f()) })
	}
	get("/api/v1/config", func() any {
		if snap := s.status().Snapshot; snap != nil {
			return snap
		}
		return struct{}{}
	})
	get("/api/v1/listeners", func() any { return nonNil(s.status().Listeners) })
	get("/api/v1/rules", func() any { return s.rules(s.status()) })
	get("/api/v1/targetgroups", func() any { return s.groups(s.status(), false) })
	get("/api/v1/certificates", func() any { return s.certificates(s.status()) })
	get("/api/v1/ingresses", func() any { return s.ingresses(s.status()) })
	get("/api/v1/reload", func() any { return s.reload.Load() })
	get("/api/v1/dashboard", func() any { return s.dashboard() })
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Rule is one routing rule as the API shows it.
type Rule struct {
	Listener    int           `json:"listener"`
	Name        string        `json:"name"`
	Host        string        `json:"host"`
	Path        string        `json:"path"`
	PathType    string        `json:"pathType"`
	TargetGroup string        `json:"targetGroup"`
	Origin      config.Origin `json:"origin"`
}

func (s *Server) rules(st runtime.Status) []Rule {
	out := []Rule{}
	if st.Snapshot == nil {
		return out
	}
	for _, l := range st.Snapshot.Listeners {
		for _, r := range l.Rules {
			out = append(out, Rule{Listener: l.Port, Name: r.Name, Host: r.Host, Path: r.Path, PathType: string(r.PathType), TargetGroup: r.TargetGroup, Origin: r.Origin})
		}
	}
	return out
}

// Target is one target with its traffic.
type Target struct {
	runtime.TargetStatus
	LastMinute    Minute    `json:"lastMinute"`
	LastError     string    `json:"lastError,omitempty"`
	LastErrorCode string    `json:"lastErrorCode,omitempty"`
	LastErrorAt   time.Time `json:"lastErrorAt,omitzero"`
	Series        []Point   `json:"series,omitempty"`
}

// Group is one target group.
type Group struct {
	Name            string   `json:"name"`
	Protocol        string   `json:"protocol"`
	ProtocolVersion string   `json:"protocolVersion"`
	Algorithm       string   `json:"algorithm"`
	Targets         []Target `json:"targets"`
}

func (s *Server) groups(st runtime.Status, series bool) []Group {
	out := []Group{}
	for _, g := range st.Groups {
		og := Group{Name: g.Name, Protocol: g.Protocol, ProtocolVersion: g.ProtocolVersion, Algorithm: g.Algorithm, Targets: []Target{}}
		for _, t := range g.Targets {
			pts, minute := s.sampler.target(g.Name, t.Address)
			ot := Target{TargetStatus: t, LastMinute: minute}
			if series {
				ot.Series = pts
			}
			if ts := s.opts.Stats.Target(g.Name, t.Address); ts != nil {
				snap := ts.Snapshot()
				ot.LastError, ot.LastErrorCode, ot.LastErrorAt = snap.LastError, snap.LastErrorCode, snap.LastErrorAt
			}
			og.Targets = append(og.Targets, ot)
		}
		out = append(out, og)
	}
	return out
}

// Certificate is a served certificate's public description.
type Certificate struct {
	ARN        string    `json:"arn"`
	DomainName string    `json:"domainName,omitempty"`
	DNSNames   []string  `json:"dnsNames,omitempty"`
	Issuer     string    `json:"issuer,omitempty"`
	NotBefore  time.Time `json:"notBefore,omitzero"`
	NotAfter   time.Time `json:"notAfter,omitzero"`
	DaysLeft   int       `json:"daysLeft"`
	Listeners  []string  `json:"listeners"` // "443 (default)", "443 (SNI)"
	Error      string    `json:"error,omitempty"`
}

func (s *Server) certificates(st runtime.Status) []Certificate {
	out := []Certificate{}
	if st.Snapshot == nil {
		return out
	}
	byARN := map[string]int{}
	for _, l := range st.Snapshot.Listeners {
		for i, arn := range l.CertificateARNs {
			role := strconv.Itoa(l.Port) + " (SNI)"
			if i == 0 {
				role = strconv.Itoa(l.Port) + " (default)"
			}
			if j, ok := byARN[arn]; ok {
				out[j].Listeners = append(out[j].Listeners, role)
				continue
			}
			c := Certificate{ARN: arn, Listeners: []string{role}}
			if s.opts.Certs != nil {
				if d, err := s.opts.Certs.Describe(arn); err != nil {
					c.Error = err.Error()
				} else {
					c.DomainName, c.DNSNames, c.Issuer, c.NotBefore, c.NotAfter = d.DomainName, d.DNSNames, d.Issuer, d.NotBefore, d.NotAfter
					c.DaysLeft = int(time.Until(d.NotAfter).Hours() / 24)
				}
			}
			byARN[arn] = len(out)
			out = append(out, c)
		}
	}
	return out
}

// Ingress is one Ingress as `kubectl get ingress` would list it.
type Ingress struct {
	Name    string    `json:"name"` // namespace/name
	Class   string    `json:"class"`
	Hosts   []string  `json:"hosts"`
	Address string    `json:"address"`
	Ports   []int     `json:"ports"`
	Since   time.Time `json:"since,omitzero"`
}

// ingressName is "namespace/name" of a rule named "namespace/name#N".
func ingressName(rule string) string {
	name, _, _ := strings.Cut(rule, "#")
	return name
}

func ingressNames(st runtime.Status) []string {
	var out []string
	for _, l := range st.Snapshot.Listeners {
		for _, r := range l.Rules {
			if n := ingressName(r.Name); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

func (s *Server) ingresses(st runtime.Status) []Ingress {
	out := []Ingress{}
	if st.Snapshot == nil {
		return out
	}
	addrs := map[int]string{}
	for _, l := range st.Listeners {
		addrs[l.Port] = l.Address
	}
	seen := s.sampler.firstSeen()
	idx := map[string]int{}
	for _, l := range st.Snapshot.Listeners {
		for _, r := range l.Rules {
			name := ingressName(r.Name)
			i, ok := idx[name]
			if !ok {
				i = len(out)
				idx[name] = i
				out = append(out, Ingress{Name: name, Class: strings.Join(s.opts.Classes, ","), Hosts: []string{}, Since: seen[name]})
			}
			in := &out[i]
			host := r.Host
			if host == "" {
				host = "*"
			}
			if !slices.Contains(in.Hosts, host) {
				in.Hosts = append(in.Hosts, host)
			}
			if !slices.Contains(in.Ports, l.Port) {
				in.Ports = append(in.Ports, l.Port)
				if a := addrs[l.Port]; a != "" {
					in.Address = joinAddr(in.Address, a)
				}
			}
		}
	}
	return out
}

func joinAddr(list, a string) string {
	if list == "" {
		return a
	}
	return list + "," + a
}

// Dashboard is everything the dashboard page shows, in one poll.
type Dashboard struct {
	Version      string                   `json:"version"`
	Started      time.Time                `json:"started"`
	Now          time.Time                `json:"now"`
	Ready        bool                     `json:"ready"`
	Reload       *ReloadInfo              `json:"reload"`
	Listeners    []runtime.ListenerStatus `json:"listeners"`
	TargetGroups []Group                  `json:"targetGroups"`
	Codes        []CodeCount              `json:"codes"`
	Certificates []Certificate            `json:"certificates"`
	Warnings     []string                 `json:"warnings"`
}

func (s *Server) dashboard() Dashboard {
	st := s.status()
	d := Dashboard{
		Version: s.opts.Version, Started: s.started, Now: time.Now(), Ready: s.ready.Load(), Reload: s.reload.Load(),
		Listeners: nonNil(st.Listeners), TargetGroups: s.groups(st, true), Certificates: s.certificates(st), Codes: []CodeCount{}, Warnings: []string{},
	}
	for code, n := range s.sampler.codeCounts() {
		d.Codes = append(d.Codes, CodeCount{Code: code, Total: n[0], LastMinute: n[1], Error: isErrorCode(code)})
	}
	slices.SortFunc(d.Codes, func(a, b CodeCount) int { return strings.Compare(a.Code, b.Code) })
	if st.Snapshot != nil {
		for _, w := range st.Snapshot.Warnings {
			d.Warnings = append(d.Warnings, w.Error())
		}
	}
	return d
}

func isErrorCode(code string) bool {
	if code == "OK" {
		return false
	}
	if len(code) == 3 && code[0] >= '1' && code[0] <= '4' {
		return false
	}
	return true
}
