// Package runtime turns configuration snapshots into a running data plane:
// it loads certificates, builds target groups and route tables, opens and
// closes listeners, and swaps the whole plane in with one atomic store.
// A snapshot that cannot be built completely is refused and the running
// plane stays as it was.
package runtime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/h2proxy"
	"github.com/l7lb/l7lb/internal/listener"
	"github.com/l7lb/l7lb/internal/mtls"
	"github.com/l7lb/l7lb/internal/observe"
	"github.com/l7lb/l7lb/internal/proxy"
	"github.com/l7lb/l7lb/internal/route"
	"github.com/l7lb/l7lb/internal/targetgroup"
	"github.com/l7lb/l7lb/internal/tlspolicy"
	"github.com/l7lb/l7lb/internal/truststore"
	"github.com/l7lb/l7lb/internal/upstream"
)

// CertLoader resolves a certificate ARN (the certificate store).
type CertLoader interface {
	Load(arn string) (tls.Certificate, error)
}

// TrustStoreLoader resolves a trust store ARN or name into its CA pool
// (the trust store, for mutual-authentication verify).
type TrustStoreLoader interface {
	Load(ref string) (*x509.CertPool, truststore.TrustStore, error)
}

// Options configure a Runtime.
type Options struct {
	Log   *slog.Logger
	Certs CertLoader
	// TrustStores resolves mutual-authentication trust stores; nil
	// refuses any snapshot with a verify listener.
	TrustStores TrustStoreLoader
	// Bind returns the address to listen on for a listener; nil means
	// DefaultBind.
	Bind func(l config.Listener) string
	// IdleTimeout for client connections (0 = 60 s).
	IdleTimeout time.Duration
	// Observer sees every finished request (nil: nobody).
	Observer observe.Observer
	// GroupEvents hears about ejections, retries and fail-open (nil: nobody).
	GroupEvents targetgroup.Events
	// ClientLimits bound what one HTTP/2 client connection may hold.
	ClientLimits h2proxy.Limits
	// Conns, when set, caps the client connections of all listeners
	// together (--max-conns); nil: no cap.
	Conns *listener.ConnLimit
	// HTTP1 bounds HTTP/1.1 requests (zero fields: the listener's
	// defaults).
	HTTP1 listener.HTTP1Limits
}

// DefaultBind listens on every interface for internet-facing listeners and
// on the loopback interface for internal ones. The listener adds the IPv6
// wildcard or loopback when the snapshot says dualstack
// (listener.Options.DualStack).
func DefaultBind(l config.Listener) string {
	host := ""
	if l.Scheme == config.SchemeInternal {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(l.Port))
}

// plane is one immutable generation of the data plane.
type plane struct {
	snapshot *config.Snapshot
	tables   map[int]*proxy.Table
	groups   map[string]*targetgroup.Group
	// redirects are the ssl-redirect ports of HTTP listeners, by port.
	redirects map[int]int
}

type liveListener struct {
	cfg   config.Listener
	bind  string
	l     *listener.Listener
	h2    *h2proxy.Server
	certs *atomic.Pointer[listener.CertSet]
}

// Runtime owns the running data plane.
type Runtime struct {
	opts  Options
	cur   atomic.Pointer[plane]
	empty *proxy.Table

	mu        sync.Mutex // serialises Apply and Shutdown
	listeners map[int]*liveListener
	serving   sync.WaitGroup
}

// New returns a Runtime with nothing to serve yet.
func New(opts Options) *Runtime {
	if opts.Bind == nil {
		opts.Bind = DefaultBind
	}
	rt := &Runtime{
		opts:      opts,
		listeners: map[int]*liveListener{},
		empty:     route.Compile[*targetgroup.Group](nil, nil),
	}
	rt.cur.Store(&plane{tables: map[int]*proxy.Table{}, groups: map[string]*targetgroup.Group{}})
	return rt
}

// Apply builds snap completely and then makes it the running plane. On
// error nothing changed.
func (rt *Runtime) Apply(snap *config.Snapshot) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	old := rt.cur.Load()

	// 1. Certificates: every ARN must load, or the snapshot is refused.
	certSets := map[int]*listener.CertSet{}
	var problems []error
	for _, l := range snap.Listeners {
		if l.Protocol != config.ProtocolHTTPS {
			continue
		}
		var certs []listener.Cert
		for _, arn := range l.CertificateARNs {
			c, err := rt.opts.Certs.Load(arn)
			if err != nil {
				problems = append(problems, fmt.Errorf("listener %d: certificate %s: %w", l.Port, arn, err))
				continue
			}
			certs = append(certs, listener.Cert{ARN: arn, TLS: c})
		}
		if len(certs) != len(l.CertificateARNs) {
			continue
		}
		cs, err := listener.NewCertSet(certs)
		if err != nil {
			problems = append(problems, fmt.Errorf("listener %d: %w", l.Port, err))
			continue
		}
		certSets[l.Port] = cs
	}
	// The security policy and inbound CIDRs of every listener. The
	// translator has checked them; a hand-made snapshot may not have.
	access := map[int]listenerAccess{}
	for _, l := range snap.Listeners {
		a, err := accessOf(l)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if a.auth, err = rt.clientAuthOf(l); err != nil {
			problems = append(problems, err)
			continue
		}
		access[l.Port] = a
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}

	// 2. Target groups: keep a group (its connections and counters) when
	// only its endpoints changed.
	next := &plane{snapshot: snap, tables: map[int]*proxy.Table{}, groups: map[string]*targetgroup.Group{}, redirects: map[int]int{}}
	for _, l := range snap.Listeners {
		if l.SSLRedirectPort != 0 && l.Protocol == config.ProtocolHTTP {
			next.redirects[l.Port] = l.SSLRedirectPort
		}
	}
	var created []*targetgroup.Group
	for _, tg := range snap.TargetGroups {
		if g := old.groups[tg.Name]; g != nil && sameExceptEndpoints(g.Config, tg) {
			next.groups[tg.Name] = g
			continue
		}
		// A group whose settings changed is replaced, but its targets
		// keep their health.
		g := targetgroup.NewSuccessor(old.groups[tg.Name], tg, rt.opts.Log, rt.opts.GroupEvents)
		created = append(created, g)
		next.groups[tg.Name] = g
	}
	for _, l := range snap.Listeners {
		if err := checkRuleGroups(l, next.groups); err != nil {
			for _, g := range created {
				g.Close()
			}
			return err
		}
		next.tables[l.Port] = route.Compile(l.Rules, func(name string) *targetgroup.Group { return next.groups[name] })
	}

	// 3. Listeners: open the new ports before anything is swapped, so a
	// port that cannot be bound refuses the whole snapshot.
	// A listener kept across the reload that turns dualstack on binds
	// its IPv6 socket here too, for the same reason.
	opened := map[int]*liveListener{}
	var v6Added []*liveListener
	undo := func() {
		for _, o := range opened {
			o.l.Shutdown(context.Background()) //nolint:errcheck // never served
		}
		for _, ll := range v6Added {
			ll.l.SetDualStack(false) //nolint:errcheck // removing cannot fail
		}
		for _, g := range created {
			g.Close()
		}
	}
	for _, l := range snap.Listeners {
		bind := rt.opts.Bind(l)
		if cur := rt.listeners[l.Port]; cur != nil && cur.cfg.Protocol == l.Protocol && cur.bind == bind {
			if l.IPAddressType.DualStack() && !cur.cfg.IPAddressType.DualStack() {
				if err := cur.l.SetDualStack(true); err != nil {
					undo()
					return fmt.Errorf("listener %d (%s): %w", l.Port, l.Protocol, err)
				}
				v6Added = append(v6Added, cur)
			}
			continue
		}
		ll, err := rt.listen(l, bind, certSets[l.Port], access[l.Port])
		if err != nil {
			undo()
			return err
		}
		opened[l.Port] = ll
	}

	// 4. Swap. From here on new requests use the new plane; requests in
	// flight finish with the groups they picked.
	for _, g := range next.groups {
		if old.groups[g.Name()] == g {
			g.SetEndpoints(findGroup(snap, g.Name()).Endpoints)
		}
	}
	rt.cur.Store(next)
	for port, cs := range certSets {
		if ll := rt.listeners[port]; ll != nil && opened[port] == nil {
			ll.certs.Store(cs)
		}
	}
	// Kept listeners take the new policy, CIDRs and address type for new
	// connections; open ones are left as they are.
	for _, l := range snap.Listeners {
		ll := rt.listeners[l.Port]
		if ll == nil || opened[l.Port] != nil {
			continue
		}
		a := access[l.Port]
		if l.Protocol == config.ProtocolHTTPS {
			ll.l.SetTLSPolicy(a.policy)
			ll.l.SetClientAuth(a.auth)
		}
		ll.l.SetInbound(a.inbound)
		if !l.IPAddressType.DualStack() {
			ll.l.SetDualStack(false) //nolint:errcheck // removing cannot fail
		}
		ll.cfg = l
	}
	var retired []*liveListener
	for port, ll := range rt.listeners {
		if _, keep := next.tables[port]; !keep || opened[port] != nil {
			retired = append(retired, ll)
			delete(rt.listeners, port)
		}
	}
	for port, ll := range opened {
		rt.listeners[port] = ll
		rt.serving.Add(1)
		go func() {
			defer rt.serving.Done()
			if err := ll.l.Serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				rt.opts.Log.Error("listener stopped", "port", port, "error", err)
			}
		}()
	}
	for _, ll := range retired {
		go rt.retire(ll)
	}
	for name, g := range old.groups {
		if next.groups[name] != g {
			g.Close()
		}
	}
	return nil
}

// listenerAccess is what a listener's ssl-policy and inbound-cidrs become.
type listenerAccess struct {
	policy  tlspolicy.Policy // HTTPS listeners only
	inbound *listener.Inbound
	auth    *mtls.Config // mutual-authentication; nil: off
}

// clientAuthOf loads the trust store of a listener's mutual
// authentication; the pool is part of this plane, swapped with it.
func (rt *Runtime) clientAuthOf(l config.Listener) (*mtls.Config, error) {
	ma := l.MutualAuthentication
	if ma == nil || l.Protocol != config.ProtocolHTTPS {
		return nil, nil
	}
	c := &mtls.Config{Mode: mtls.Mode(ma.Mode), TrustStore: ma.TrustStore, IgnoreExpiry: ma.IgnoreClientCertificateExpiry, AdvertiseCANames: ma.AdvertiseTrustStoreCaNames}
	if c.Mode != mtls.ModeVerify {
		return c, nil
	}
	if rt.opts.TrustStores == nil {
		return nil, fmt.Errorf("listener %d: mutual-authentication verify: no trust store source", l.Port)
	}
	pool, _, err := rt.opts.TrustStores.Load(ma.TrustStore)
	if err != nil {
		return nil, fmt.Errorf("listener %d: mutual-authentication verify: trust store %s: %w", l.Port, ma.TrustStore, err)
	}
	c.Pool = pool
	return c, nil
}

func accessOf(l config.Listener) (listenerAccess, error) {
	var a listenerAccess
	if l.Protocol == config.ProtocolHTTPS {
		name := l.SSLPolicy
		if name == "" {
			name = tlspolicy.Default
		}
		p, err := tlspolicy.Lookup(name)
		if err != nil {
			return a, fmt.Errorf("listener %d: ssl-policy: %w", l.Port, err)
		}
		a.policy = p
	}
	in, err := listener.NewInbound(l.InboundCIDRs)
	if err != nil {
		return a, fmt.Errorf("listener %d: %w", l.Port, err)
	}
	a.inbound = in
	return a, nil
}

func (rt *Runtime) listen(l config.Listener, bind string, cs *listener.CertSet, access listenerAccess) (*liveListener, error) {
	port := l.Port
	ll := &liveListener{cfg: l, bind: bind}
	var certs *atomic.Pointer[listener.CertSet]
	if l.Protocol == config.ProtocolHTTPS {
		certs = &atomic.Pointer[listener.CertSet]{}
		certs.Store(cs)
		ll.certs = certs
	}
	routes := func() *proxy.Table {
		if t := rt.cur.Load().tables[port]; t != nil {
			return t
		}
		return rt.empty
	}
	secure := l.Protocol == config.ProtocolHTTPS
	idle := rt.opts.IdleTimeout
	if l.IdleTimeout > 0 {
		idle = l.IdleTimeout // load-balancer-attributes idle_timeout.timeout_seconds
	}
	h := proxy.NewHandler(port, secure, routes, rt.opts.Log)
	h.Redirect = func() int { return rt.cur.Load().redirects[port] }
	h2 := h2proxy.New(h2proxy.Options{Routes: routes, Fallback: h, Port: port, Secure: secure, Log: rt.opts.Log, IdleTimeout: idle, Observer: rt.opts.Observer, Limits: rt.opts.ClientLimits})
	ll.h2 = h2
	// Observability (issue 5): HTTP/1.1 requests are reported by a wrapper
	// (h2proxy reports HTTP/2 streams); an Observer that also counts
	// connections and TLS handshakes gets a listener.Events per port.
	var events listener.Events
	if src, ok := rt.opts.Observer.(interface{ ListenerEvents(int) listener.Events }); ok {
		events = src.ListenerEvents(port)
	}
	ln, err := listener.Listen(listener.Options{Addr: bind, Certs: certs, Handler: proxy.Observed(h, port, rt.opts.Observer), H2: h2, Log: rt.opts.Log, IdleTimeout: idle, Events: events,
		Conns: rt.opts.Conns, HTTP1: rt.opts.HTTP1,
		DualStack: l.IPAddressType.DualStack(), TLSPolicy: access.policy, Inbound: access.inbound, ClientAuth: access.auth})
	if err != nil {
		return nil, fmt.Errorf("listener %d (%s): %w", port, l.Protocol, err)
	}
	ll.l = ln
	return ll, nil
}

// retire drains a listener that the new configuration no longer has.
func (rt *Runtime) retire(ll *liveListener) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ll.l.Shutdown(ctx) //nolint:errcheck // best effort; logged by the listener
}

func sameExceptEndpoints(a, b config.TargetGroup) bool {
	a.Endpoints, b.Endpoints = nil, nil
	return reflect.DeepEqual(a, b)
}

func findGroup(s *config.Snapshot, name string) config.TargetGroup {
	for _, tg := range s.TargetGroups {
		if tg.Name == name {
			return tg
		}
	}
	return config.TargetGroup{}
}

// Addrs lists the bound address of every listener by configured port.
func (rt *Runtime) Addrs() map[int]net.Addr {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := map[int]net.Addr{}
	for port, ll := range rt.listeners {
		out[port] = ll.l.Addr()
	}
	return out
}

// Group returns a running target group by name (nil if none).
func (rt *Runtime) Group(name string) *targetgroup.Group {
	return rt.cur.Load().groups[name]
}

// Snapshot is the configuration now serving.
func (rt *Runtime) Snapshot() *config.Snapshot { return rt.cur.Load().snapshot }

// Shutdown drains every listener until ctx ends, then stops the groups.
func (rt *Runtime) Shutdown(ctx context.Context) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(rt.listeners))
	for port, ll := range rt.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ll.l.Shutdown(ctx); err != nil {
				errs <- fmt.Errorf("listener %d: %w", port, err)
			}
		}()
		delete(rt.listeners, port)
	}
	wg.Wait()
	rt.serving.Wait()
	close(errs)
	for _, g := range rt.cur.Load().groups {
		g.Close()
	}
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Flow is the data path's flow-control state right now: every client
// connection of every listener and every target connection of every
// group, with each target's requests in flight. Tests check invariants on
// it (windows back at their initial values when idle, no stream left).
type Flow struct {
	Clients []h2proxy.ConnFlow
	Targets []TargetFlow
}

// TargetFlow is one target's part of Flow.
type TargetFlow struct {
	Group, Addr string
	InFlight    int64
	Conns       []upstream.ConnFlow
}

// Flow reports the data path's flow-control state.
func (rt *Runtime) Flow() Flow {
	var f Flow
	rt.mu.Lock()
	for _, ll := range rt.listeners {
		f.Clients = append(f.Clients, ll.h2.Flow()...)
	}
	rt.mu.Unlock()
	for name, g := range rt.cur.Load().groups {
		for _, t := range g.Targets() {
			f.Targets = append(f.Targets, TargetFlow{Group: name, Addr: t.Addr, InFlight: t.Meter.InFlight(), Conns: t.Conns.Flow()})
		}
	}
	return f
}

// checkRuleGroups makes sure every target group a rule forwards to
// exists: the translator guarantees it, a hand-made snapshot may not, and
// a rule without its group would fail every request it matches.
func checkRuleGroups(l config.Listener, groups map[string]*targetgroup.Group) error {
	for _, r := range l.Rules {
		names := []string{r.TargetGroup}
		if r.Action != nil {
			names = nil
			for _, w := range r.Action.TargetGroups {
				names = append(names, w.TargetGroup)
			}
		}
		for _, n := range names {
			if groups[n] == nil {
				return fmt.Errorf("listener %d: rule %s: no target group %q", l.Port, r.Name, n)
			}
		}
	}
	return nil
}
