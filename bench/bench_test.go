package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary double as the backend process, which the
// harness starts by re-executing itself with L7LB_BENCH_BACKEND=1.
func TestMain(m *testing.M) {
	if os.Getenv(backendEnv) == "1" {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "backend" {
			args = args[1:]
		}
		if err := runBackend(args); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQuickL7LB runs the harness's quick mode for l7lb alone with tiny
// windows and checks that it produced sane numbers and its outputs.
func TestQuickL7LB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds l7lb and runs load for several seconds")
	}
	out := t.TempDir()
	start := time.Now()
	rep, err := run(config{
		Workloads: []string{"a", "b", "c", "d", "f"},
		Duration:  400 * time.Millisecond,
		Warmup:    200 * time.Millisecond,
		Repeat:    1,
		Quick:     true,
		Out:       out,
		Workers:   2,
		Direct:    false,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("harness took %v", time.Since(start))
	if len(rep.Records) != 5 {
		t.Fatalf("got %d records, want 5 (one per workload)", len(rep.Records))
	}
	for _, r := range rep.Records {
		name := r.Workload + "/" + r.Balancer
		if r.Balancer != "l7lb" {
			t.Errorf("%s: only l7lb was asked for", name)
		}
		if r.Failed != "" {
			t.Errorf("%s: failed: %s", name, r.Failed)
			continue
		}
		if r.Ops == 0 || r.RPS <= 0 || r.MBps <= 0 {
			t.Errorf("%s: no RPCs completed (ops %d, rps %.1f)", name, r.Ops, r.RPS)
		}
		if r.ErrorsTotal != 0 {
			t.Errorf("%s: %d errors %v: %s", name, r.ErrorsTotal, r.Errors, r.FirstError)
		}
		if r.P50ms <= 0 || r.P99ms < r.P50ms || r.MaxMs < r.P99ms {
			t.Errorf("%s: latencies out of order: p50 %.3f p99 %.3f max %.3f", name, r.P50ms, r.P99ms, r.MaxMs)
		}
		if r.CPUusPerRPC == nil || *r.CPUusPerRPC <= 0 {
			t.Errorf("%s: no balancer CPU recorded", name)
		}
		if r.PeakRSSMiB == nil || *r.PeakRSSMiB < 1 || *r.PeakRSSMiB > 4096 {
			t.Errorf("%s: implausible peak RSS %v", name, r.PeakRSSMiB)
		}
		if len(r.Split) != 3 {
			t.Errorf("%s: split %v, want 3 backends", name, r.Split)
			continue
		}
		var sum int64
		for _, c := range r.Split {
			if c <= 0 {
				t.Errorf("%s: a backend got nothing: %v", name, r.Split)
			}
			sum += c
		}
		if r.SplitDevPct == nil {
			t.Errorf("%s: split deviation not recorded", name)
		}
	}
	// JSON lines: one per record, each parseable.
	f, err := os.Open(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results.jsonl line %d: %v", n+1, err)
		}
		n++
	}
	if n != len(rep.Records) {
		t.Errorf("results.jsonl has %d lines, want %d", n, len(rep.Records))
	}
	sec, err := os.ReadFile(filepath.Join(out, "README-section.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#### a:", "#### f:", "| l7lb |", "Targets of issue 3", "Machine:", "go version"} {
		if !strings.Contains(string(sec), want) {
			t.Errorf("README-section.md lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "results.md")); err != nil {
		t.Error(err)
	}
}
