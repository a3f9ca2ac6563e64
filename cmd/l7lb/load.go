package main

import (
	"fmt"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/config/ingress"
	"github.com/l7lb/l7lb/internal/config/manifest"
)

// sourceFlags say where file mode finds its configuration; serve,
// validate and demo share them.
type sourceFlags struct {
	files     stringList
	classes   stringList
	endpoints stringList
	store     string
}

// load reads the files and translates them into a snapshot. known, when
// non-nil, tells whether a certificate ARN exists in the store.
func (sf *sourceFlags) load(known func(string) bool, trustStores ...func(string) bool) (*config.Snapshot, []config.Warning, error) {
	if len(sf.files.values) == 0 {
		return nil, nil, fmt.Errorf("no configuration: give one or more -f FILE")
	}
	opts := ingress.Options{
		Classes:          sf.classes.values,
		Endpoints:        map[string][]config.Endpoint{},
		DNS:              map[string]config.DNSSource{},
		KnownCertificate: known,
	}
	if len(trustStores) > 0 {
		opts.KnownTrustStore = trustStores[0]
	}
	for _, v := range sf.endpoints.values {
		key, eps, dns, err := ingress.ParseEndpointsFlag(v)
		if err != nil {
			return nil, nil, fmt.Errorf("--endpoints %q: %w", v, err)
		}
		if dns != nil {
			opts.DNS[key] = *dns
		} else {
			opts.Endpoints[key] = append(opts.Endpoints[key], eps...)
		}
	}
	objs, warnings, err := manifest.LoadFiles(sf.files.values...)
	if err != nil {
		return nil, warnings, err
	}
	snap, err := ingress.Translate(objs, opts)
	if err != nil {
		return nil, append(warnings, snap.Warnings...), err
	}
	return snap, append(warnings, snap.Warnings...), nil
}
