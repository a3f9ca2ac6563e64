// Package truststore is l7lb's local stand-in for the ALB's trust stores
// (aws elbv2 create-trust-store): a named bundle of CA certificates that a
// listener in mutual-authentication verify mode checks client certificates
// against. An Ingress's mutual-authentication annotation names one by ARN
// or by name; the runtime Loads it into an x509.CertPool.
//
// Layout on disk, inside the certificate store's directory (one --store for
// both, as one AWS account holds both):
//
//	<store>/truststores/        0700
//	  <name>/                   0700
//	    ca-bundle.pem           the CA certificates, re-encoded
//	    meta.json               TrustStore, as JSON
//
// Entries are written and replaced atomically (atomicdir), so a reader
// never sees half a trust store.
package truststore

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/l7lb/l7lb/internal/atomicdir"
)

// Subdir is the trust stores' directory inside the store directory.
const Subdir = "truststores"

// File names inside a trust store's directory.
const (
	bundleFile = "ca-bundle.pem"
	metaFile   = "meta.json"
)

// ARNPrefix is the fixed part of every trust store ARN; the ALB's is
// arn:aws:elasticloadbalancing:<region>:<account>:truststore/<name>/<id>.
const ARNPrefix = "arn:l7lb:elasticloadbalancing:local:000000000000:truststore/"

// Errors callers may test for (wrapped, with the name or ARN).
var (
	ErrNotFound  = errors.New("trust store not found")
	ErrDuplicate = errors.New("a trust store with this name already exists")
	ErrBadName   = errors.New("invalid trust store name")
)

// namePattern is the ALB's rule for trust store names: up to 32
// characters, letters, digits and hyphens, no hyphen first or last.
var namePattern = regexp.MustCompile(`^([a-zA-Z0-9]+-)*[a-zA-Z0-9]+$`)

// idPattern: the ALB's ids are 16 lower-case hex digits.
var idPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// TrustStore is what the store knows about one trust store; it is also
// the content of meta.json.
type TrustStore struct {
	Name string `json:"name"`
	ARN  string `json:"arn"`
	// NumberOfCaCertificates counts the bundle's certificates.
	NumberOfCaCertificates int `json:"numberOfCaCertificates"`
	// Subjects of the CA certificates, in bundle order (RFC 2253).
	Subjects  []string  `json:"subjects"`
	CreatedAt time.Time `json:"createdAt"`
	// ModifiedAt is the last modify (bundle replacement); CreatedAt until then.
	ModifiedAt time.Time `json:"modifiedAt"`
	SHA256     string    `json:"sha256"` // of the stored bundle
}

// Status is the ALB's trust store status; a local one is ready at once.
func (TrustStore) Status() string { return "ACTIVE" }

// ValidName checks a trust store name by the ALB's rules.
func ValidName(name string) error {
	if len(name) == 0 || len(name) > 32 || !namePattern.MatchString(name) {
		return fmt.Errorf("%w %q: use 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen", ErrBadName, name)
	}
	return nil
}

// ARN returns the ARN of trust store name with id.
func ARN(name, id string) string { return ARNPrefix + name + "/" + id }

// ParseARN returns the name and id inside arn; it accepts only the shape
// ARN produces, since the name names a directory.
func ParseARN(arn string) (name, id string, err error) {
	rest, ok := strings.CutPrefix(arn, ARNPrefix)
	if !ok {
		return "", "", fmt.Errorf("not an l7lb trust store ARN: %q (want %s<name>/<id>)", arn, ARNPrefix)
	}
	name, id, ok = strings.Cut(rest, "/")
	if !ok || ValidName(name) != nil || !idPattern.MatchString(id) {
		return "", "", fmt.Errorf("not an l7lb trust store ARN: %q (want %s<name>/<16 hex digits>)", arn, ARNPrefix)
	}
	return name, id, nil
}

// Store is the trust stores under one store directory.
type Store struct {
	dir string // <store>/truststores
}

// Open opens the trust stores of the store directory root, creating the
// directory (0700) if needed.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("truststore: empty store directory")
	}
	dir := filepath.Join(root, Subdir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("truststore: creating %s: %w", dir, err)
	}
	atomicdir.Sweep(dir)
	return &Store{dir: dir}, nil
}

// Dir is the directory holding the trust stores.
func (s *Store) Dir() string { return s.dir }

// Create checks bundle (see ParseBundle) and stores it as a new trust
// store called name. The name must be new, as on the ALB.
func (s *Store) Create(name string, bundle []byte, now time.Time) (TrustStore, []string, error) {
	if err := ValidName(name); err != nil {
		return TrustStore{}, nil, err
	}
	certs, err := ParseBundle(bundle)
	if err != nil {
		return TrustStore{}, nil, err
	}
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return TrustStore{}, nil, fmt.Errorf("truststore: new id: %w", err)
	}
	ts := describeBundle(certs)
	ts.Name = name
	ts.ARN = ARN(name, hex.EncodeToString(idb[:]))
	ts.CreatedAt, ts.ModifiedAt = now.UTC(), now.UTC()
	files, err := entryFiles(ts, certs)
	if err != nil {
		return TrustStore{}, nil, err
	}
	if err := atomicdir.Create(s.dir, name, files); err != nil {
		if errors.Is(err, atomicdir.ErrExist) {
			return TrustStore{}, nil, fmt.Errorf("truststore: %w: %s", ErrDuplicate, name)
		}
		return TrustStore{}, nil, fmt.Errorf("truststore: %w", err)
	}
	return ts, bundleWarnings(certs, now), nil
}

// Modify replaces the CA bundle of the trust store arn, keeping its ARN
// (aws elbv2 modify-trust-store). Listeners verifying against it take the
// new bundle on their next reload; connections already verified stay.
func (s *Store) Modify(arn string, bundle []byte, now time.Time) (TrustStore, []string, error) {
	old, err := s.Describe(arn)
	if err != nil {
		return TrustStore{}, nil, err
	}
	certs, err := ParseBundle(bundle)
	if err != nil {
		return TrustStore{}, nil, err
	}
	ts := describeBundle(certs)
	ts.Name, ts.ARN, ts.CreatedAt, ts.ModifiedAt = old.Name, old.ARN, old.CreatedAt, now.UTC()
	files, err := entryFiles(ts, certs)
	if err != nil {
		return TrustStore{}, nil, err
	}
	if err := atomicdir.Replace(s.dir, old.Name, files); err != nil {
		return TrustStore{}, nil, fmt.Errorf("truststore: %w", err)
	}
	return ts, bundleWarnings(certs, now), nil
}

// List returns every trust store, by name.
func (s *Store) List() ([]TrustStore, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("truststore: listing %s: %w", s.dir, err)
	}
	var out []TrustStore
	for _, e := range entries {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue // temporary directories and foreign files
		}
		ts, err := s.readMeta(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ts)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Describe returns the trust store ref names: an ARN of this store or a
// bare name (the LBC annotation accepts either).
func (s *Store) Describe(ref string) (TrustStore, error) {
	name, err := s.resolve(ref)
	if err != nil {
		return TrustStore{}, err
	}
	ts, err := s.readMeta(name)
	if errors.Is(err, fs.ErrNotExist) {
		return TrustStore{}, s.notFound(ref)
	}
	if err != nil {
		return TrustStore{}, err
	}
	if ref != name && ts.ARN != ref {
		// Same name, other id: a trust store deleted and created again
		// is a different one, as on the ALB.
		return TrustStore{}, s.notFound(ref)
	}
	return ts, nil
}

// Delete removes the trust store arn.
func (s *Store) Delete(arn string) error {
	if _, err := s.Describe(arn); err != nil {
		return err
	}
	name, _, _ := ParseARN(arn)
	if name == "" {
		name = arn
	}
	if err := atomicdir.Remove(s.dir, name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s.notFound(arn)
		}
		return fmt.Errorf("truststore: deleting %s: %w", arn, err)
	}
	return nil
}

// Load returns the CA certificates of the trust store ref (ARN or name)
// as a pool, with its description.
func (s *Store) Load(ref string) (*x509.CertPool, TrustStore, error) {
	pool, ts, err := s.load(ref)
	if err != nil && !errors.Is(err, ErrNotFound) {
		// A modify may have swapped the directory while it was read.
		pool, ts, err = s.load(ref)
	}
	return pool, ts, err
}

func (s *Store) load(ref string) (*x509.CertPool, TrustStore, error) {
	ts, err := s.Describe(ref)
	if err != nil {
		return nil, TrustStore{}, err
	}
	root, err := os.OpenRoot(filepath.Join(s.dir, ts.Name))
	if err != nil {
		return nil, TrustStore{}, fmt.Errorf("truststore: loading %s: %w", ref, err)
	}
	defer root.Close()
	b, err := root.ReadFile(bundleFile)
	if err != nil {
		return nil, TrustStore{}, fmt.Errorf("truststore: loading %s: %w", ref, err)
	}
	certs, err := ParseBundle(b)
	if err != nil {
		return nil, TrustStore{}, fmt.Errorf("truststore: loading %s (%s): %w", ref, filepath.Join(s.dir, ts.Name, bundleFile), err)
	}
	return Pool(certs), ts, nil
}

// Has reports whether ref (ARN or name) names a trust store here.
func (s *Store) Has(ref string) bool {
	_, err := s.Describe(ref)
	return err == nil
}

// resolve turns an ARN or a name into the directory name.
func (s *Store) resolve(ref string) (string, error) { return refName(ref) }

func (s *Store) notFound(ref string) error {
	return fmt.Errorf("truststore: %w: %s (store %s)", ErrNotFound, ref, s.dir)
}

func (s *Store) readMeta(name string) (TrustStore, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name, metaFile))
	if err != nil {
		return TrustStore{}, fmt.Errorf("truststore: reading %s: %w", name, err)
	}
	var ts TrustStore
	if err := json.Unmarshal(b, &ts); err != nil {
		return TrustStore{}, fmt.Errorf("truststore: %s: %w", filepath.Join(s.dir, name, metaFile), err)
	}
	return ts, nil
}

// describeBundle fills in what a bundle says about itself.
func describeBundle(certs []*x509.Certificate) TrustStore {
	ts := TrustStore{NumberOfCaCertificates: len(certs)}
	for _, c := range certs {
		ts.Subjects = append(ts.Subjects, c.Subject.ToRDNSequence().String())
	}
	sum := sha256.Sum256(EncodeBundle(certs))
	ts.SHA256 = hex.EncodeToString(sum[:])
	return ts
}

func entryFiles(ts TrustStore, certs []*x509.Certificate) ([]atomicdir.File, error) {
	meta, err := json.MarshalIndent(ts, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("truststore: encoding metadata: %w", err)
	}
	return []atomicdir.File{
		{Name: bundleFile, Data: EncodeBundle(certs), Mode: 0o644},
		{Name: metaFile, Data: append(meta, '\n'), Mode: 0o644},
	}, nil
}

// EncodeBundle writes certs as PEM, in order.
func EncodeBundle(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// bundleWarnings: expired or not-yet-valid CAs are accepted (the ALB
// accepts them too) but can verify nothing while they are.
func bundleWarnings(certs []*x509.Certificate, now time.Time) []string {
	var out []string
	for i, c := range certs {
		switch {
		case now.After(c.NotAfter):
			out = append(out, fmt.Sprintf("certificate %d (%s) expired on %s; client certificates it issued will not verify", i+1, c.Subject, c.NotAfter.UTC().Format(time.RFC3339)))
		case now.Before(c.NotBefore):
			out = append(out, fmt.Sprintf("certificate %d (%s) is not valid before %s", i+1, c.Subject, c.NotBefore.UTC().Format(time.RFC3339)))
		}
	}
	return out
}
