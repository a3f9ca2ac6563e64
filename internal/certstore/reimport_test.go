package certstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ACM's import-certificate --certificate-arn: the ARN stays, the content
// changes; Load sees the new leaf; an unknown ARN is refused.
func TestReimportKeepsARN(t *testing.T) {
	a, b := newTestPKI(t), newTestPKI(t)
	s := openTestStore(t)
	first, _, err := s.Import(a.leaf.CertPEM(), a.leaf.ChainPEM(), a.leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := s.Reimport(first.ARN, b.leaf.CertPEM(), b.leaf.ChainPEM(), b.leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if again.ARN != first.ARN {
		t.Fatalf("re-import changed the ARN: %s -> %s", first.ARN, again.ARN)
	}
	c, err := s.Load(first.ARN)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.SerialNumber.Cmp(b.leaf.Cert.SerialNumber) != 0 {
		t.Errorf("Load after re-import: serial %x, want %x (the new one)", c.Leaf.SerialNumber, b.leaf.Cert.SerialNumber)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Errorf("List after re-import = %d certificates, want 1", len(list))
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 1 {
		t.Errorf("store holds %d entries after re-import, want 1 (the old directory removed)", len(entries))
	}

	unknown := ARN("00000000-0000-4000-8000-000000000000")
	if _, _, err := s.Reimport(unknown, b.leaf.CertPEM(), b.leaf.ChainPEM(), b.leaf.KeyPEM(), time.Now()); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "without --certificate-arn") {
		t.Errorf("re-import of an unknown ARN: %v, want ErrNotFound with a hint", err)
	}
	// A broken re-import leaves the certificate as it was.
	if _, _, err := s.Reimport(first.ARN, b.leaf.CertPEM(), nil, a.leaf.KeyPEM(), time.Now()); err == nil {
		t.Fatal("re-import with a foreign key succeeded")
	}
	if c, err := s.Load(first.ARN); err != nil || c.Leaf.SerialNumber.Cmp(b.leaf.Cert.SerialNumber) != 0 {
		t.Errorf("after a refused re-import: %v, serial changed", err)
	}
}

// Loads racing re-imports always get a whole certificate: a leaf with its
// own key, never the leaf of one version with the key of the other.
func TestLoadDuringReimport(t *testing.T) {
	a, b := newTestPKI(t), newTestPKI(t)
	s := openTestStore(t)
	c, _, err := s.Import(a.leaf.CertPEM(), a.leaf.ChainPEM(), a.leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Load(c.ARN); err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
		}
	}()
	for i := range rounds {
		p := a
		if i%2 == 0 {
			p = b
		}
		if _, _, err := s.Reimport(c.ARN, p.leaf.CertPEM(), p.leaf.ChainPEM(), p.leaf.KeyPEM(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("Load during re-imports: %v", err)
	default:
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), ".*")); len(left) != 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}
