package tlspolicy

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

// TestVersions: every policy of AWS's tables is known, with the protocol
// versions its "TLS Protocols" rows mark, and nothing else is.
func TestVersions(t *testing.T) {
	want := map[string][]string{
		"ELBSecurityPolicy-TLS13-1-2-2021-06":      {"TLSv1.2", "TLSv1.3"},
		"ELBSecurityPolicy-TLS13-1-3-2021-06":      {"TLSv1.3"},
		"ELBSecurityPolicy-TLS13-1-2-Res-2021-06":  {"TLSv1.2", "TLSv1.3"},
		"ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06": {"TLSv1.2", "TLSv1.3"},
		"ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06": {"TLSv1.2", "TLSv1.3"},
		"ELBSecurityPolicy-TLS13-1-1-2021-06":      {"TLSv1.1", "TLSv1.2", "TLSv1.3"},
		"ELBSecurityPolicy-TLS13-1-0-2021-06":      {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
		"ELBSecurityPolicy-2016-08":                {"TLSv1", "TLSv1.1", "TLSv1.2"},
		"ELBSecurityPolicy-2015-05":                {"TLSv1", "TLSv1.1", "TLSv1.2"},
		"ELBSecurityPolicy-FS-1-2-Res-2020-10":     {"TLSv1.2"},
		"ELBSecurityPolicy-FS-1-2-Res-2019-08":     {"TLSv1.2"},
		"ELBSecurityPolicy-FS-1-2-2019-08":         {"TLSv1.2"},
		"ELBSecurityPolicy-FS-1-1-2019-08":         {"TLSv1.1", "TLSv1.2"},
		"ELBSecurityPolicy-FS-2018-06":             {"TLSv1", "TLSv1.1", "TLSv1.2"},
		"ELBSecurityPolicy-TLS-1-2-Ext-2018-06":    {"TLSv1.2"},
		"ELBSecurityPolicy-TLS-1-2-2017-01":        {"TLSv1.2"},
		"ELBSecurityPolicy-TLS-1-1-2017-01":        {"TLSv1.1", "TLSv1.2"},
		"ELBSecurityPolicy-TLS-1-0-2015-04":        {"TLSv1", "TLSv1.1", "TLSv1.2"},
	}
	for name, protos := range want {
		p, err := Lookup(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := p.Protocols(); !slices.Equal(got, protos) {
			t.Errorf("%s allows %v, want %v", name, got, protos)
		}
		c := p.TLSConfig()
		if c.MinVersion != p.MinVersion || c.MaxVersion != p.MaxVersion || !slices.Equal(c.CipherSuites, p.CipherSuites) {
			t.Errorf("%s: TLSConfig %v-%v %v does not carry the policy", name, c.MinVersion, c.MaxVersion, c.CipherSuites)
		}
	}
	if names := Names(); len(names) != len(want) {
		t.Errorf("%d policies known, want %d: %v", len(names), len(want), names)
	}
	for _, d := range []string{Default, LBCDefault} {
		if _, err := Lookup(d); err != nil {
			t.Errorf("default %s: %v", d, err)
		}
	}
}

// TestCiphers: what each policy negotiates below TLS 1.3, as Go suites,
// for the policies the handshake tests use and the edge cases of the map.
func TestCiphers(t *testing.T) {
	names := func(ids []uint16) []string {
		var out []string
		for _, id := range ids {
			out = append(out, tls.CipherSuiteName(id))
		}
		return out
	}
	tests := []struct {
		policy  string
		suites  []string
		dropped []string
	}{
		// TLS 1.3 only: no TLS 1.2 suites at all.
		{"ELBSecurityPolicy-TLS13-1-3-2021-06", nil, nil},
		// The recommended policy: ECDHE with GCM and CBC-SHA256; the two
		// AES-256-CBC-SHA384 suites are not in Go.
		{"ELBSecurityPolicy-TLS13-1-2-2021-06", []string{
			"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		}, []string{"ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384"}},
		{"ELBSecurityPolicy-FS-1-2-Res-2020-10", []string{
			"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		}, nil},
		// The default: ECDHE and static RSA, SHA-1 CBC included (what TLS
		// 1.0 and 1.1 clients need); AES256-SHA256 is not in Go.
		{"ELBSecurityPolicy-2016-08", []string{
			"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
			"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
			"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
			"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
			"TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA",
			"TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_256_CBC_SHA",
		}, []string{"ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384", "AES256-SHA256"}},
	}
	for _, tc := range tests {
		p, err := Lookup(tc.policy)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(p.CipherSuites); !slices.Equal(got, tc.suites) {
			t.Errorf("%s suites\n got %v\nwant %v", tc.policy, got, tc.suites)
		}
		if !slices.Equal(p.Dropped, tc.dropped) {
			t.Errorf("%s dropped %v, want %v", tc.policy, p.Dropped, tc.dropped)
		}
	}
	// Only TLS-1-0-2015-04 keeps 3DES.
	for _, n := range Names() {
		p, _ := Lookup(n)
		if has := slices.Contains(p.CipherSuites, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA); has != (n == "ELBSecurityPolicy-TLS-1-0-2015-04") {
			t.Errorf("%s: 3DES %v", n, has)
		}
		// Every policy that allows TLS 1.0 or 1.1 has a suite those
		// versions can use (the SHA-1 CBC ones).
		if p.MinVersion < tls.VersionTLS12 && !slices.Contains(p.CipherSuites, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA) {
			t.Errorf("%s allows TLS < 1.2 without a CBC-SHA suite", n)
		}
	}
	a, _ := Lookup("ELBSecurityPolicy-2015-05")
	b, _ := Lookup("ELBSecurityPolicy-2016-08")
	if !slices.Equal(a.CipherSuites, b.CipherSuites) || a.MinVersion != b.MinVersion || a.MaxVersion != b.MaxVersion {
		t.Error("2015-05 differs from 2016-08; AWS documents them as identical")
	}
}

// TestBuild: a policy whose TLS 1.2 ciphers Go lacks entirely is kept when
// it allows TLS 1.3 and refused when it does not; an unmapped name in the
// table is a mistake.
func TestBuild(t *testing.T) {
	onlyMissing := []string{"ECDHE-RSA-AES256-SHA384", "AES256-SHA256"}
	p, err := build(entry{"with-1.3", v12, v13, onlyMissing})
	if err != nil || len(p.CipherSuites) != 0 || !slices.Equal(p.Dropped, onlyMissing) {
		t.Errorf("TLS 1.3 policy without Go ciphers: %+v, %v", p, err)
	}
	if _, err := build(entry{"without-1.3", v12, v12, onlyMissing}); err == nil || !strings.Contains(err.Error(), "does not allow TLS 1.3") {
		t.Errorf("TLS 1.2 policy without Go ciphers: %v", err)
	}
	if _, err := build(entry{"typo", v12, v12, []string{"ECDHE-RSA-AES128-GCM"}}); err == nil || !strings.Contains(err.Error(), "ECDHE-RSA-AES128-GCM") {
		t.Errorf("unknown cipher name: %v", err)
	}
}

// TestLookupErrors: what an operator reads for a wrong name.
func TestLookupErrors(t *testing.T) {
	tests := []struct{ name, want string }{
		{"ELBSecurityPolicy-TLS-1-3-2021-06", "expected an ELBSecurityPolicy name such as ELBSecurityPolicy-TLS13-1-2-2021-06"},
		{"elbsecuritypolicy-2016-08", "case-sensitive: ELBSecurityPolicy-2016-08"},
		{"ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09", "post-quantum, FIPS and RFC 9151 policies are not"},
		{"ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04", "post-quantum, FIPS and RFC 9151 policies are not"},
		{" ELBSecurityPolicy-2016-08", "blanks around"},
		{"", "unknown security policy \"\""},
	}
	for _, tc := range tests {
		_, err := Lookup(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Lookup(%q) = %v, want %q", tc.name, err, tc.want)
		}
	}
}
