package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// readmeCommands returns the one-line commands of README.md's "Two
// commands" section, in order.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	inSection, inBlock := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			inSection = line == "## Two commands"
		case inSection && strings.HasPrefix(line, "```"):
			inBlock = !inBlock
		case inSection && inBlock && strings.TrimSpace(line) != "":
			cmds = append(cmds, strings.TrimSpace(line))
		}
	}
	return cmds
}

// TestReadmeCommands: README holds exactly two commands, the demo (this
// command) and the tests; the demo one runs as a newcomer would paste it,
// from the repository root. (The test command is what CI runs, so it is
// not run again from inside itself.)
func TestReadmeCommands(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) != 2 {
		t.Fatalf("README's \"Two commands\" section has %d commands: %q", len(cmds), cmds)
	}
	// The demo is this command, not a subcommand of the production binary
	// (cmd/l7lb carries no demo; issue 13).
	if f := strings.Fields(cmds[0]); len(f) < 3 || f[0] != "go" || f[1] != "run" || f[2] != "./cmd/l7lb-demo" || slices.Contains(f, "testserver") {
		t.Fatalf("first command %q is not the demo: want go run ./cmd/l7lb-demo", cmds[0])
	}
	if cmds[1] != "bash .ci/run" {
		t.Fatalf("second command %q is not the test command .ci/run runs", cmds[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", cmds[0])
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmds[0], err, out)
	}
	for _, want := range []string{"every hit list equals a brute-force search", "balanced per RPC", "replica-2", "demo finished: OK"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
