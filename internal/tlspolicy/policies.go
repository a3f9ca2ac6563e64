// Package tlspolicy maps the ALB's predefined security policies — the
// ELBSecurityPolicy-* names of alb.ingress.kubernetes.io/ssl-policy — to
// Go's crypto/tls settings: the lowest and highest protocol version and
// the TLS 1.0–1.2 cipher suites.
//
// # Source
//
// The table below is AWS's "Security policies" tables for Application Load
// Balancers: "Create an HTTPS listener for your Application Load Balancer",
// sections "TLS 1.3 security policies", "FS supported policies" and "TLS
// security policies", as published in awsdocs/elb-application-load-balancers-user-guide,
// doc_source/create-https-listener.md at commit fb24293 (2023-04-06), the
// last revision of that repository before AWS archived it. Each policy
// lists its protocols and ciphers exactly as the tables mark them, under
// the OpenSSL cipher names AWS uses. Policies AWS added later (the FIPS
// ones of 2023-04, the post-quantum and RFC 9151 ones of 2025) are not in
// that source, and so not here: their names are refused like any unknown
// name, with a message saying why (see Lookup).
//
// # What Go cannot do
//
//   - TLS 1.3 cipher suites are not configurable in crypto/tls: a policy
//     that allows TLS 1.3 gets Go's three (TLS_AES_128_GCM_SHA256,
//     TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256), which are
//     exactly the three every ALB TLS 1.3 policy lists.
//   - Three ciphers the policies list are not implemented by crypto/tls and
//     are dropped: ECDHE-ECDSA-AES256-SHA384, ECDHE-RSA-AES256-SHA384 and
//     AES256-SHA256 (the AES-256-CBC suites with an SHA-2 MAC). Their
//     AES-128 twins (ECDHE-*-AES128-SHA256, AES128-SHA256) are implemented
//     and kept. No ALB policy has DHE ciphers.
//   - Go picks the cipher by its own preference order (it ignores the
//     server's list order), where the ALB uses the order of the policy.
//   - Key exchange groups are Go's defaults for every policy (X25519MLKEM768,
//     X25519, P-256, P-384 and more); the policies of this table do not
//     restrict them.
//
// A policy whose every TLS 1.0–1.2 cipher were dropped would still be
// usable if it allows TLS 1.3 (its TLS 1.2 handshakes would then fail for
// want of a cipher); one that does not allow TLS 1.3 would be unusable and
// is refused by Lookup. No policy of the table is in that case.
package tlspolicy

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// Default is the policy of an HTTPS listener whose Ingress names none:
// ELBSecurityPolicy-TLS13-1-2-2021-06, AWS's recommended policy (TLS 1.2
// and 1.3, ECDHE only), which is what l7lb negotiated before ssl-policy
// was honoured, near enough (TLS 1.2 and 1.3 with Go's default suites).
//
// This differs, on purpose, from the AWS Load Balancer Controller, whose
// default is LBCDefault: taking it would open every existing l7lb HTTPS
// listener that names no policy to TLS 1.0 and 1.1, CBC-SHA1 and static
// RSA key exchange, and take TLS 1.3 away from them. An Ingress that
// wants the controller's behaviour names ELBSecurityPolicy-2016-08.
const Default = "ELBSecurityPolicy-TLS13-1-2-2021-06"

// LBCDefault is the AWS Load Balancer Controller's default policy
// (--default-ssl-policy, defaultSSLPolicy in its
// pkg/config/controller_config.go, and the default its annotation table
// gives for ssl-policy; also what the ALB API, the AWS CLI and
// CloudFormation give a listener created without one — only the AWS
// console defaults to a TLS 1.3 policy). l7lb does not default to it; see
// Default.
const LBCDefault = "ELBSecurityPolicy-2016-08"

// Policy is one security policy as crypto/tls can apply it.
type Policy struct {
	Name string
	// MinVersion and MaxVersion are the lowest and highest protocol
	// version the policy allows (tls.VersionTLS10 … tls.VersionTLS13).
	MinVersion, MaxVersion uint16
	// CipherSuites are the policy's TLS 1.0–1.2 ciphers that crypto/tls
	// implements, in the policy's order (which Go does not follow). Nil
	// for a TLS 1.3-only policy.
	CipherSuites []uint16
	// Ciphers are the policy's TLS 1.0–1.2 ciphers under AWS's (OpenSSL)
	// names, all of them, in the policy's order.
	Ciphers []string
	// Dropped are the ciphers of Ciphers that crypto/tls does not
	// implement.
	Dropped []string
}

// TLSConfig returns a server configuration with the policy's versions and
// ciphers; the caller adds certificates and ALPN.
func (p Policy) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: p.MinVersion, MaxVersion: p.MaxVersion, CipherSuites: slices.Clone(p.CipherSuites)}
}

// Protocols names the versions the policy allows, as AWS spells them
// ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3").
func (p Policy) Protocols() []string {
	var out []string
	for _, v := range []struct {
		v    uint16
		name string
	}{{tls.VersionTLS10, "TLSv1"}, {tls.VersionTLS11, "TLSv1.1"}, {tls.VersionTLS12, "TLSv1.2"}, {tls.VersionTLS13, "TLSv1.3"}} {
		if p.MinVersion <= v.v && v.v <= p.MaxVersion {
			out = append(out, v.name)
		}
	}
	return out
}

// goCipher maps AWS's (OpenSSL) cipher names to crypto/tls suites; 0 marks
// a cipher crypto/tls does not implement.
var goCipher = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-AES256-SHA384":     0, // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 (0xC024): not in crypto/tls
	"ECDHE-RSA-AES256-SHA384":       0, // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 (0xC028): not in crypto/tls
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES256-SHA256":                 0, // TLS_RSA_WITH_AES_256_CBC_SHA256 (0x003D): not in crypto/tls
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

// Cipher lists shared by several policies, in AWS's order. Each policy
// below says which it has; the names are the rows of AWS's tables.
var (
	// ecdheGCM: ECDHE with AES-GCM only.
	ecdheGCM = []string{
		"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
		"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
	}
	// ecdheSHA2: ECDHE with AES-GCM and AES-CBC with SHA-2 MACs.
	ecdheSHA2 = []string{
		"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
		"ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256",
		"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
		"ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384",
	}
	// ecdheAll: every ECDHE cipher of the tables, SHA-1 CBC included.
	ecdheAll = []string{
		"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
		"ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256",
		"ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
		"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
		"ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384",
		"ECDHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES256-SHA",
	}
	// rsaSHA2: static RSA key exchange, AES-GCM and AES-CBC with SHA-2.
	rsaSHA2 = []string{"AES128-GCM-SHA256", "AES128-SHA256", "AES256-GCM-SHA384", "AES256-SHA256"}
	// rsaAll: every static RSA AES cipher of the tables.
	rsaAll = []string{"AES128-GCM-SHA256", "AES128-SHA256", "AES128-SHA", "AES256-GCM-SHA384", "AES256-SHA256", "AES256-SHA"}
)

func join(lists ...[]string) []string { return slices.Concat(lists...) }

// entry is one row of the table: a policy as AWS documents it.
type entry struct {
	name     string
	min, max uint16
	ciphers  []string // TLS 1.0–1.2 ciphers (AWS names)
}

const (
	v10 = tls.VersionTLS10
	v11 = tls.VersionTLS11
	v12 = tls.VersionTLS12
	v13 = tls.VersionTLS13
)

// table is AWS's three tables (see the package comment), one policy a
// line: protocols from the "TLS Protocols" rows, ciphers from the "TLS
// Ciphers" rows.
var table = []entry{
	// TLS 1.3 security policies. All allow TLS 1.3 with
	// TLS-AES-128-GCM-SHA256, TLS-AES-256-GCM-SHA384 and
	// TLS-CHACHA20-POLY1305-SHA256.
	{"ELBSecurityPolicy-TLS13-1-2-2021-06", v12, v13, ecdheSHA2},
	{"ELBSecurityPolicy-TLS13-1-3-2021-06", v13, v13, nil},
	{"ELBSecurityPolicy-TLS13-1-2-Res-2021-06", v12, v13, ecdheGCM},
	{"ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06", v12, v13, join(ecdheAll, rsaAll)},
	{"ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", v12, v13, join(ecdheSHA2, rsaSHA2)},
	{"ELBSecurityPolicy-TLS13-1-1-2021-06", v11, v13, join(ecdheAll, rsaAll)},
	{"ELBSecurityPolicy-TLS13-1-0-2021-06", v10, v13, join(ecdheAll, rsaAll)},

	// FS supported policies (forward secrecy: ECDHE only), and the
	// default.
	{"ELBSecurityPolicy-2016-08", v10, v12, join(ecdheAll, rsaAll)},
	{"ELBSecurityPolicy-FS-1-2-Res-2020-10", v12, v12, ecdheGCM},
	{"ELBSecurityPolicy-FS-1-2-Res-2019-08", v12, v12, ecdheSHA2},
	{"ELBSecurityPolicy-FS-1-2-2019-08", v12, v12, ecdheAll},
	{"ELBSecurityPolicy-FS-1-1-2019-08", v11, v12, ecdheAll},
	{"ELBSecurityPolicy-FS-2018-06", v10, v12, ecdheAll},

	// TLS security policies.
	{"ELBSecurityPolicy-TLS-1-2-Ext-2018-06", v12, v12, join(ecdheAll, rsaAll)},
	{"ELBSecurityPolicy-TLS-1-2-2017-01", v12, v12, join(ecdheSHA2, rsaSHA2)},
	{"ELBSecurityPolicy-TLS-1-1-2017-01", v11, v12, join(ecdheAll, rsaAll)},
	{"ELBSecurityPolicy-TLS-1-0-2015-04", v10, v12, join(ecdheAll, rsaAll, []string{"DES-CBC3-SHA"})},
	// AWS: "ELBSecurityPolicy-2015-05 (identical to ELBSecurityPolicy-2016-08)".
	{"ELBSecurityPolicy-2015-05", v10, v12, join(ecdheAll, rsaAll)},
}

// policies is the table, checked and mapped at start-up.
var policies = func() map[string]Policy {
	out := make(map[string]Policy, len(table))
	for _, e := range table {
		p, err := build(e)
		if err != nil {
			panic("tlspolicy: " + err.Error()) // a mistake in the table above
		}
		out[e.name] = p
	}
	return out
}()

// build maps one entry to crypto/tls; it fails for an unknown cipher name
// and for a policy left with nothing Go can negotiate.
func build(e entry) (Policy, error) {
	p := Policy{Name: e.name, MinVersion: e.min, MaxVersion: e.max, Ciphers: slices.Clone(e.ciphers)}
	for _, c := range e.ciphers {
		id, known := goCipher[c]
		switch {
		case !known:
			return Policy{}, fmt.Errorf("policy %s: cipher %s is not in the cipher map", e.name, c)
		case id == 0:
			p.Dropped = append(p.Dropped, c)
		default:
			p.CipherSuites = append(p.CipherSuites, id)
		}
	}
	if len(p.CipherSuites) == 0 && p.MaxVersion < tls.VersionTLS13 {
		return Policy{}, fmt.Errorf("policy %s: none of its ciphers is implemented by crypto/tls and it does not allow TLS 1.3", e.name)
	}
	return p, nil
}

// Lookup returns the policy of that name (case-sensitive, as the ALB API
// takes it). The error says what is wrong and lists valid names.
func Lookup(name string) (Policy, error) {
	if p, ok := policies[name]; ok {
		return p, nil
	}
	some := "ELBSecurityPolicy-TLS13-1-2-2021-06, ELBSecurityPolicy-TLS13-1-3-2021-06, ELBSecurityPolicy-TLS-1-2-Ext-2018-06, " + LBCDefault
	switch {
	case strings.Contains(name, "-PQ-") || strings.Contains(name, "FIPS") || strings.Contains(name, "RFC9151"):
		return Policy{}, fmt.Errorf("%q is not one of the ALB policies l7lb maps: post-quantum, FIPS and RFC 9151 policies are not (their cipher tables are newer than the AWS table l7lb's is taken from); use one of %s (all %d: l7lb's README)", name, some, len(policies))
	case policies[strings.TrimSpace(name)].Name != "":
		return Policy{}, fmt.Errorf("%q has blanks around the policy name", name)
	}
	for n := range policies {
		if strings.EqualFold(n, name) {
			return Policy{}, fmt.Errorf("unknown security policy %q; the names are case-sensitive: %s", name, n)
		}
	}
	return Policy{}, fmt.Errorf("unknown security policy %q; expected an ELBSecurityPolicy name such as %s (all %d: l7lb's README)", name, some, len(policies))
}

// Names lists every policy name, sorted.
func Names() []string {
	out := make([]string, 0, len(policies))
	for n := range policies {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
