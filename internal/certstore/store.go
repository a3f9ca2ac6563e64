// Package certstore is l7lb's local stand-in for AWS Certificate Manager
// (seed step 2): it imports a certificate, its chain and its private key,
// checks them the way ACM does, and hands back an ARN that an Ingress's
// alb.ingress.kubernetes.io/certificate-arn annotation can name. Listeners
// then Load the ARN into a tls.Certificate.
//
// Layout on disk, one directory per certificate:
//
//	<dir>/                      0700
//	  <uuid>/                   0700
//	    certificate.pem         the leaf
//	    chain.pem               the chain as imported (may be empty)
//	    key.pem                 0600, PKCS#8
//	    meta.json               Certificate, as JSON
//
// A certificate directory is built under a dot-prefixed temporary name and
// renamed into place, and deleted by renaming it away first, so a reader (or
// a crash) never sees half a certificate. Store methods are safe for
// concurrent use, also by several processes sharing a directory.
package certstore

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// File names inside a certificate directory.
const (
	certFile  = "certificate.pem"
	chainFile = "chain.pem"
	keyFile   = "key.pem"
	metaFile  = "meta.json"
)

// Temporary directories left by a crash are swept after this long; a live
// import finishes in milliseconds, so anything older is litter.
const staleAfter = time.Hour

// EnvStore names the environment variable that overrides DefaultDir.
const EnvStore = "L7LB_CERT_STORE"

// ErrNotFound is returned (wrapped, with the ARN) for an ARN the store does
// not hold.
var ErrNotFound = errors.New("certificate not found")

// Certificate is what the store knows about an imported certificate. It is
// also the content of meta.json. It never holds key material.
type Certificate struct {
	ARN                string    `json:"arn"`
	DomainName         string    `json:"domainName"`
	Subject            string    `json:"subject"`
	DNSNames           []string  `json:"dnsNames,omitempty"`
	IPAddresses        []string  `json:"ipAddresses,omitempty"`
	Issuer             string    `json:"issuer"`
	Serial             string    `json:"serial"`
	KeyAlgorithm       string    `json:"keyAlgorithm"`
	SignatureAlgorithm string    `json:"signatureAlgorithm"`
	NotBefore          time.Time `json:"notBefore"`
	NotAfter           time.Time `json:"notAfter"`
	ImportedAt         time.Time `json:"importedAt"`
	SHA256             string    `json:"sha256"` // fingerprint of the leaf's DER
}

// SubjectAlternativeNames returns the DNS names, then the IP addresses.
func (c Certificate) SubjectAlternativeNames() []string {
	return append(append([]string{}, c.DNSNames...), c.IPAddresses...)
}

// Status is ACM's status for an imported certificate: ISSUED until NotAfter,
// EXPIRED after.
func (c Certificate) Status(now time.Time) string {
	if now.After(c.NotAfter) {
		return "EXPIRED"
	}
	return "ISSUED"
}

// Store is a certificate store rooted at a directory.
type Store struct {
	dir string
}

// DefaultDir is $L7LB_CERT_STORE if set, else $XDG_DATA_HOME/l7lb/certificates,
// else ~/.local/share/l7lb/certificates (the XDG default).
func DefaultDir() string {
	if d := os.Getenv(EnvStore); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "l7lb", "certificates")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		// No home (e.g. a bare container user): fall back to the working
		// directory rather than failing; --store overrides it anyway.
		return filepath.Join("l7lb", "certificates")
	}
	return filepath.Join(home, ".local", "share", "l7lb", "certificates")
}

// Open opens the store in dir, creating it with mode 0700 if needed. An
// existing directory's mode is left alone: it may be shared (say --store
// /tmp), and the key files inside are 0600 in 0700 directories regardless.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("certstore: empty store directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certstore: creating store %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("certstore: opening store %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("certstore: store %s is not a directory", dir)
	}
	s := &Store{dir: dir}
	s.sweep()
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Import validates certPEM (one certificate), chainPEM (its issuers, nearest
// first; may be empty) and keyPEM (its unencrypted private key) at time now,
// stores them under a new ARN, and returns the certificate's metadata and any
// warnings. Problems with an input are *InputError. Importing the same
// certificate again is allowed and yields a new ARN, as in ACM.
//
// What is stored is re-encoded from what was parsed (the key as PKCS#8), so
// stray text and extra PEM blocks that were checked and skipped never land in
// the store.
func (s *Store) Import(certPEM, chainPEM, keyPEM []byte, now time.Time) (Certificate, []string, error) {
	c, warns, err := check(certPEM, chainPEM, keyPEM, now)
	if err != nil {
		return Certificate{}, nil, err
	}
	if prior := s.findBySHA256(c.meta.SHA256); prior != "" {
		warns = append(warns, fmt.Sprintf("the same certificate is already imported as %s; this import gets a new ARN", prior))
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return Certificate{}, nil, fmt.Errorf("certstore: new certificate id: %w", err)
	}
	meta, files, err := c.files(ARN(id.String()), now)
	if err != nil {
		return Certificate{}, nil, err
	}
	if err := s.writeDir(id.String(), files); err != nil {
		return Certificate{}, nil, err
	}
	return meta, warns, nil
}

// Reimport replaces the certificate stored as arn, which must exist, with
// new PEMs, keeping the ARN: ACM's import-certificate --certificate-arn.
// Listeners serving arn pick the new certificate up on their next reload
// (serve watches the store); a reader sees the old files or the new ones,
// never a mix (atomicdir.Replace).
func (s *Store) Reimport(arn string, certPEM, chainPEM, keyPEM []byte, now time.Time) (Certificate, []string, error) {
	id, err := ParseARN(arn)
	if err != nil {
		return Certificate{}, nil, s.badARN(err)
	}
	if !s.Has(arn) {
		return Certificate{}, nil, fmt.Errorf("%w; import without --certificate-arn to create a certificate", s.notFound(arn))
	}
	c, warns, err := check(certPEM, chainPEM, keyPEM, now)
	if err != nil {
		return Certificate{}, nil, err
	}
	if old, err := s.Describe(arn); err == nil && old.SHA256 == c.meta.SHA256 {
		warns = append(warns, fmt.Sprintf("%s already holds this very certificate; re-imported anyway", arn))
	}
	meta, files, err := c.files(arn, now)
	if err != nil {
		return Certificate{}, nil, err
	}
	if err := s.replaceDir(id, files); err != nil {
		return Certificate{}, nil, err
	}
	return meta, warns, nil
}

// files encodes a checked certificate as the files of its directory.
func (c *checked) files(arn string, now time.Time) (Certificate, []file, error) {
	meta := c.meta
	meta.ARN = arn
	meta.ImportedAt = now.UTC()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return Certificate{}, nil, fmt.Errorf("certstore: encoding private key: %w", err)
	}
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return Certificate{}, nil, fmt.Errorf("certstore: encoding metadata: %w", err)
	}
	return meta, []file{
		{Name: certFile, Data: encodeCerts(c.leaf), Mode: 0o644},
		{Name: chainFile, Data: encodeCerts(c.chain...), Mode: 0o644},
		{Name: keyFile, Data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), Mode: 0o600},
		{Name: metaFile, Data: append(metaJSON, '\n'), Mode: 0o644},
	}, nil
}

// List returns every certificate in the store, oldest import first.
func (s *Store) List() ([]Certificate, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("certstore: listing %s: %w", s.dir, err)
	}
	var out []Certificate
	for _, e := range entries {
		if !e.IsDir() || !IsARN(ARN(e.Name())) {
			continue // temporary directories and foreign files
		}
		c, err := s.readMeta(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ImportedAt.Equal(out[j].ImportedAt) {
			return out[i].ImportedAt.Before(out[j].ImportedAt)
		}
		return out[i].ARN < out[j].ARN
	})
	return out, nil
}

// Describe returns the metadata of the certificate arn.
func (s *Store) Describe(arn string) (Certificate, error) {
	id, err := ParseARN(arn)
	if err != nil {
		return Certificate{}, s.badARN(err)
	}
	c, err := s.readMeta(id)
	if errors.Is(err, fs.ErrNotExist) {
		return Certificate{}, s.notFound(arn)
	}
	return c, err
}

// Has reports whether the store holds arn.
func (s *Store) Has(arn string) bool {
	id, err := ParseARN(arn)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(s.dir, id, metaFile))
	return err == nil
}

// Delete removes the certificate arn. The directory is first renamed out of
// sight, so a concurrent Load sees either the whole certificate or none.
func (s *Store) Delete(arn string) error {
	id, err := ParseARN(arn)
	if err != nil {
		return s.badARN(err)
	}
	src := filepath.Join(s.dir, id)
	dst := filepath.Join(s.dir, ".deleted-"+id+"-"+uuid.NewString())
	if err := os.Rename(src, dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s.notFound(arn)
		}
		return fmt.Errorf("certstore: deleting %s: %w", arn, err)
	}
	syncDir(s.dir)
	if err := os.RemoveAll(dst); err != nil {
		// The certificate is already gone from the store's point of view;
		// the litter is swept by a later Open.
		return fmt.Errorf("certstore: %s deleted, but removing %s failed: %w", arn, dst, err)
	}
	return nil
}

// Load returns the certificate arn ready for tls.Config.Certificates: the
// leaf, then the chain's intermediates (self-signed roots are not sent: the
// client must already have them, and RFC 8446 §4.4.2 lets servers omit them),
// with the private key and Leaf set.
func (s *Store) Load(arn string) (tls.Certificate, error) {
	id, err := ParseARN(arn)
	if err != nil {
		return tls.Certificate{}, s.badARN(err)
	}
	c, err := s.load(arn, id)
	if err != nil && s.Has(arn) {
		// A re-import may have swapped the directory while it was read
		// (or, where directories cannot be exchanged atomically, been
		// between two renames): the second reading sees the new one.
		c, err = s.load(arn, id)
	}
	return c, err
}

// load reads the certificate's files through one directory handle, so
// that all of them come from the same version of the directory.
func (s *Store) load(arn, id string) (tls.Certificate, error) {
	root, err := os.OpenRoot(filepath.Join(s.dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, s.notFound(arn)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certstore: loading %s: %w", arn, err)
	}
	defer root.Close()
	read := func(name string) ([]byte, error) {
		b, err := root.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, s.notFound(arn)
		}
		if err != nil {
			return nil, fmt.Errorf("certstore: loading %s: %w", arn, err)
		}
		return b, nil
	}
	certPEM, err := read(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	chainPEM, err := read(chainFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := read(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	// Re-parse and re-match rather than trust the files: they are plain
	// files an operator can edit.
	leaf, err := parseLeaf(certPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certstore: loading %s: %w", arn, err)
	}
	chain, err := parseCerts(chainPEM, InputChain)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certstore: loading %s: %w", arn, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certstore: loading %s: %w", arn, err)
	}
	if err := matchKey(leaf, key); err != nil {
		return tls.Certificate{}, fmt.Errorf("certstore: loading %s: %w", arn, err)
	}
	tc := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		if !selfSigned(c) {
			tc.Certificate = append(tc.Certificate, c.Raw)
		}
	}
	return tc, nil
}

func (s *Store) notFound(arn string) error {
	return fmt.Errorf("certstore: %w: %s (store %s)", ErrNotFound, arn, s.dir)
}

// badARN wraps a ParseARN error so that it also matches ErrNotFound: a
// malformed ARN (say an Ingress still naming arn:aws:acm:...) is certainly
// not in the store, and callers should not need two checks for that.
func (s *Store) badARN(err error) error {
	return fmt.Errorf("certstore: %w: %w", ErrNotFound, err)
}

func (s *Store) readMeta(id string) (Certificate, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, id, metaFile))
	if err != nil {
		return Certificate{}, fmt.Errorf("certstore: reading %s: %w", ARN(id), err)
	}
	var c Certificate
	if err := json.Unmarshal(b, &c); err != nil {
		return Certificate{}, fmt.Errorf("certstore: %s: %w", filepath.Join(s.dir, id, metaFile), err)
	}
	return c, nil
}

// findBySHA256 returns the ARN of a stored certificate with this fingerprint,
// or "". It is best effort: it only feeds a warning.
func (s *Store) findBySHA256(sum string) string {
	all, err := s.List()
	if err != nil {
		return ""
	}
	for _, c := range all {
		if c.SHA256 == sum {
			return c.ARN
		}
	}
	return ""
}

// sweep removes temporary and deleted directories left behind by crashes.
// Only old ones: a young one may be another process's import in progress.
func (s *Store) sweep() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) && !strings.HasPrefix(e.Name(), ".deleted-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAfter {
			_ = os.RemoveAll(filepath.Join(s.dir, e.Name()))
		}
	}
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
