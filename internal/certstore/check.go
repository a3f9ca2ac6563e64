package certstore

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// ExpiryWarning is how close to NotAfter an import starts warning. ACM's own
// renewal window for managed certificates is 60 days; 30 is when an imported
// certificate (which nobody renews for you) becomes urgent.
const ExpiryWarning = 30 * 24 * time.Hour

// checked is a validated import: what gets written to the store.
type checked struct {
	leaf  *x509.Certificate
	chain []*x509.Certificate // as given, minus any copy of the leaf
	key   crypto.Signer
	meta  Certificate // without ARN and ImportedAt
}

// Check validates an import without storing it and returns the metadata the
// certificate would get (ARN and ImportedAt empty) plus warnings. chainPEM may
// be empty, as in ACM, when the certificate is self-signed or its issuer is
// known to clients.
func Check(certPEM, chainPEM, keyPEM []byte, now time.Time) (Certificate, []string, error) {
	c, warns, err := check(certPEM, chainPEM, keyPEM, now)
	if err != nil {
		return Certificate{}, nil, err
	}
	return c.meta, warns, nil
}

func check(certPEM, chainPEM, keyPEM []byte, now time.Time) (*checked, []string, error) {
	var warns []string
	leaf, err := parseLeaf(certPEM)
	if err != nil {
		return nil, nil, err
	}
	var chain []*x509.Certificate
	if !isBlank(chainPEM) {
		all, err := parseCerts(chainPEM, InputChain)
		if err != nil {
			return nil, nil, err
		}
		// A "fullchain.pem" passed as the chain repeats the leaf; serving
		// it twice is harmless but wrong, so drop it and say so.
		for i, c := range all {
			if c.Equal(leaf) {
				warns = append(warns, fmt.Sprintf("certificate chain block %d is the certificate itself; dropped", i+1))
				continue
			}
			chain = append(chain, c)
		}
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	if err := matchKey(leaf, key); err != nil {
		return nil, nil, err
	}
	if now.Before(leaf.NotBefore) {
		return nil, nil, inputErr(InputCertificate, 0, "not valid until %s", stamp(leaf.NotBefore))
	}
	if now.After(leaf.NotAfter) {
		return nil, nil, inputErr(InputCertificate, 0, "expired on %s", stamp(leaf.NotAfter))
	}
	if left := leaf.NotAfter.Sub(now); left < ExpiryWarning {
		warns = append(warns, fmt.Sprintf("certificate expires in %s, on %s", humanDuration(left), stamp(leaf.NotAfter)))
	}
	chainWarns, err := verifyChain(leaf, chain, now)
	if err != nil {
		return nil, nil, err
	}
	warns = append(warns, chainWarns...)
	warns = append(warns, usageWarnings(leaf)...)
	return &checked{leaf: leaf, chain: chain, key: key, meta: describe(leaf)}, warns, nil
}

// verifyChain checks that chain links leaf to a trust anchor.
//
// Self-signed certificates in the chain are the roots and the rest are
// intermediates. When the chain stops below a root (ACM allows that, and
// many CAs hand out just the intermediates), its last certificate is used as
// the anchor. We deliberately do not fall back to the host's system roots:
// the result would depend on the machine, a private CA would always fail, and
// it would not test what we control. What we can check, and what matters
// for serving, is that every link from the leaf up to the last certificate
// given is a valid signature; whether that top is trusted is the client's
// decision. ExtKeyUsageAny keeps an EKU mismatch from failing the import
// (ACM imports those); usageWarnings reports it instead.
func verifyChain(leaf *x509.Certificate, chain []*x509.Certificate, now time.Time) ([]string, error) {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	var warns []string
	switch {
	case len(chain) == 0 && selfSigned(leaf):
		roots.AddCert(leaf)
		warns = append(warns, "certificate is self-signed; clients must be given it explicitly to trust it")
	case len(chain) == 0:
		return []string{fmt.Sprintf("no certificate chain given; clients must already trust the issuer %q", leaf.Issuer.String())}, nil
	default:
		hasRoot := false
		for _, c := range chain {
			if selfSigned(c) {
				roots.AddCert(c)
				hasRoot = true
			} else {
				inters.AddCert(c)
			}
		}
		if !hasRoot {
			roots.AddCert(chain[len(chain)-1])
		}
	}
	paths, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		if !hasIssuerOf(leaf, chain) {
			// The commonest mistake: the chain holds only the root, or
			// belongs to another certificate. Say what is missing.
			err = fmt.Errorf("%w (no certificate in the chain is the issuer %q)", err, leaf.Issuer.String())
		}
		return nil, &InputError{Input: InputChain, Err: fmt.Errorf("does not verify the certificate: %w", err)}
	}
	for i, c := range chain {
		// An issuer that runs out breaks the certificate just as surely as
		// its own expiry does, and nobody watches the chain's dates.
		if left := c.NotAfter.Sub(now); left < ExpiryWarning {
			warns = append(warns, fmt.Sprintf("certificate chain block %d (%s) expires in %s, on %s", i+1, c.Subject.String(), humanDuration(left), stamp(c.NotAfter)))
		}
		if !onAnyPath(c, paths) {
			warns = append(warns, fmt.Sprintf("certificate chain block %d (%s) is not on the path from the certificate to its root; it will be served but does nothing", i+1, c.Subject.String()))
		}
	}
	return warns, nil
}

func hasIssuerOf(leaf *x509.Certificate, chain []*x509.Certificate) bool {
	for _, c := range chain {
		if bytes.Equal(c.RawSubject, leaf.RawIssuer) {
			return true
		}
	}
	return false
}

func onAnyPath(c *x509.Certificate, paths [][]*x509.Certificate) bool {
	for _, p := range paths {
		for _, pc := range p {
			if pc.Equal(c) {
				return true
			}
		}
	}
	return false
}

// selfSigned reports whether c is signed by its own key. CheckSignature is
// used rather than CheckSignatureFrom because the latter insists on the CA
// bit, and a self-signed leaf has none.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// usageWarnings flags certificates that import fine but that TLS clients
// will refuse for a server.
func usageWarnings(leaf *x509.Certificate) []string {
	var warns []string
	if len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0 {
		warns = append(warns, "certificate has no DNS or IP subject alternative names; gRPC, Go and browsers ignore the Common Name, so hostname checks will fail")
	}
	if len(leaf.ExtKeyUsage) > 0 && !hasEKU(leaf, x509.ExtKeyUsageServerAuth) && !hasEKU(leaf, x509.ExtKeyUsageAny) {
		warns = append(warns, "certificate's extended key usage lacks TLS server authentication; clients will refuse it")
	}
	return warns
}

func hasEKU(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, e := range c.ExtKeyUsage {
		if e == u {
			return true
		}
	}
	return false
}

// DescribeLeaf is what describe-certificate says of a leaf that is not in
// a directory store (the controller's Secrets); ARN and ImportedAt are
// left for the caller.
func DescribeLeaf(leaf *x509.Certificate) Certificate { return describe(leaf) }

// describe extracts the metadata of a leaf certificate.
func describe(leaf *x509.Certificate) Certificate {
	ips := make([]string, 0, len(leaf.IPAddresses))
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	sum := sha256.Sum256(leaf.Raw)
	return Certificate{
		DomainName:         domainName(leaf),
		Subject:            leaf.Subject.String(),
		DNSNames:           leaf.DNSNames,
		IPAddresses:        ips,
		Issuer:             leaf.Issuer.String(),
		Serial:             colonHex(leaf.SerialNumber.Bytes()),
		KeyAlgorithm:       keyAlgorithm(leaf.PublicKey),
		SignatureAlgorithm: signatureAlgorithm(leaf.SignatureAlgorithm),
		NotBefore:          leaf.NotBefore.UTC(),
		NotAfter:           leaf.NotAfter.UTC(),
		SHA256:             hex.EncodeToString(sum[:]),
	}
}

// domainName picks the certificate's main name as ACM does: the subject
// Common Name, else the first subject alternative name.
func domainName(c *x509.Certificate) string {
	switch {
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case len(c.IPAddresses) > 0:
		return c.IPAddresses[0].String()
	}
	return ""
}

// colonHex formats a serial number as ACM does: lower-case hex bytes joined
// by colons.
func colonHex(b []byte) string {
	if len(b) == 0 {
		return "00"
	}
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = hex.EncodeToString([]byte{x})
	}
	return strings.Join(parts, ":")
}

// humanDuration renders d in whole days, or hours under a day.
func humanDuration(d time.Duration) string {
	if d < 24*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// signatureAlgorithm spells a signature algorithm as ACM does
// (SHA256WITHRSA, SHA256WITHECDSA, ...), falling back to Go's name.
func signatureAlgorithm(a x509.SignatureAlgorithm) string {
	switch a {
	case x509.SHA1WithRSA:
		return "SHA1WITHRSA"
	case x509.SHA256WithRSA:
		return "SHA256WITHRSA"
	case x509.SHA384WithRSA:
		return "SHA384WITHRSA"
	case x509.SHA512WithRSA:
		return "SHA512WITHRSA"
	case x509.SHA256WithRSAPSS:
		return "SHA256WITHRSAPSS"
	case x509.SHA384WithRSAPSS:
		return "SHA384WITHRSAPSS"
	case x509.SHA512WithRSAPSS:
		return "SHA512WITHRSAPSS"
	case x509.ECDSAWithSHA256:
		return "SHA256WITHECDSA"
	case x509.ECDSAWithSHA384:
		return "SHA384WITHECDSA"
	case x509.ECDSAWithSHA512:
		return "SHA512WITHECDSA"
	case x509.PureEd25519:
		return "ED25519"
	}
	return a.String()
}
