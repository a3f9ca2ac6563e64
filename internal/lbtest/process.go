package lbtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RunWithL7LB is the TestMain of packages whose tests run l7lb as its own
// process: it builds the l7lb command into a temporary directory, sets
// *binary to its path, runs the tests, removes the directory and returns
// their exit code, so that TestMain reads
//
//	os.Exit(lbtest.RunWithL7LB(m, &binary))
//
// A failed build panics, as no test could run without the binary.
func RunWithL7LB(m *testing.M, binary *string) int {
	dir, err := os.MkdirTemp("", "l7lb-bin-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	*binary = filepath.Join(dir, "l7lb")
	if err := buildL7LB(*binary); err != nil {
		panic(err)
	}
	return m.Run()
}

func buildL7LB(binary string) error {
	out, err := exec.Command("go", "build", "-o", binary, "github.com/l7lb/l7lb/cmd/l7lb").CombinedOutput()
	if err != nil {
		return fmt.Errorf("build l7lb: %w\n%s", err, out)
	}
	return nil
}
