// Package dns keeps a target group's endpoints in step with a DNS name,
// re-resolving it periodically (--endpoints NS/SVC=dns:NAME:PORT).
package dns

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/l7lb/l7lb/internal/config"
)

// Resolver is the part of *net.Resolver this package needs.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Watch resolves src every src.Interval (default 10 s) until ctx ends and
// calls update whenever the answer changes. A failed lookup keeps the last
// good endpoints: a DNS hiccup must not empty a target group.
func Watch(ctx context.Context, src config.DNSSource, r Resolver, log *slog.Logger, update func([]config.Endpoint)) {
	interval := src.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	var last []string
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := r.LookupIPAddr(lctx, src.Name)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("DNS lookup failed; keeping the last endpoints", "name", src.Name, "error", err)
		case err == nil:
			ips := make([]string, 0, len(addrs))
			for _, a := range addrs {
				ips = append(ips, a.IP.String())
			}
			slices.Sort(ips)
			ips = slices.Compact(ips)
			if !slices.Equal(ips, last) {
				last = ips
				eps := make([]config.Endpoint, 0, len(ips))
				for _, ip := range ips {
					eps = append(eps, config.Endpoint{Address: ip, Port: src.Port, Ready: true})
				}
				update(eps)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
