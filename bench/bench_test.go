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

// TestAbuseL7LB runs the three abuse scenarios through l7lb with shrunk
// sizes and times, and checks that the abusers did what they say and that
// the outputs are written. It does not judge l7lb's figures: the
// scenarios exist to show them.
func TestAbuseL7LB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds l7lb and runs the abuse scenarios for several seconds")
	}
	out := t.TempDir()
	p := abuseParams{
		StormDuration: 500 * time.Millisecond, StormInFlight: 4, StormReply: 4 << 20, StormDeadline: 20 * time.Millisecond,
		RawStreams: 20, RawBatch: 10, RawReply: 4 << 20,
		AfterDuration: 500 * time.Millisecond, AfterInFlight: 2, AfterReply: 1 << 20, AfterDeadline: time.Second,
		StallDuration: 1500 * time.Millisecond, StallStreams: 4, StallReply: 8 << 20,
		BaselineDuration: 300 * time.Millisecond, GoodConns: 2, GoodInFlight: 4, GoodReq: 3 << 10, GoodReply: 1 << 10,
		GoodDeadline: time.Second,
	}
	_, err := run(config{
		Workloads: []string{"a"}, Abuse: []string{"timeout-storm", "timeout-storm-raw", "stalled-reader"},
		Repeat: 1, Out: out, Workers: 2, abuseParams: &p,
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, "abuse.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []AbuseRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r AbuseRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("abuse.jsonl line %d: %v", len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3", len(recs))
	}
	for _, r := range recs {
		name := r.Scenario + "/" + r.Balancer
		if r.Balancer != "l7lb" || r.Failed != "" {
			t.Errorf("%s: failed: %q", name, r.Failed)
			continue
		}
		if r.PeakRSS == nil || *r.PeakRSS < 1 || r.HWM == nil {
			t.Errorf("%s: no RSS recorded", name)
		}
		if r.Victims == nil || r.Victims.Calls == 0 {
			t.Errorf("%s: the well-behaved clients made no calls", name)
		}
		switch r.Scenario {
		case "timeout-storm":
			if r.Storm == nil || r.Storm.Calls == 0 || r.Storm.Errors["DeadlineExceeded"] == 0 {
				t.Errorf("%s: the storm timed nothing out: %+v", name, r.Storm)
			}
			if r.Control == nil || r.Control.OK == 0 {
				t.Errorf("%s: no call completed before the storm: %+v", name, r.Control)
			}
		case "timeout-storm-raw":
			if r.Raw == nil || r.Raw.Streams != p.RawStreams || r.Raw.Resets != p.RawStreams || r.Raw.DataBytes != 0 {
				t.Errorf("%s: raw abuser %+v, want %d streams opened and reset, no DATA", name, r.Raw, p.RawStreams)
			}
		case "stalled-reader":
			if r.Raw == nil || r.Raw.Streams != p.StallStreams {
				t.Errorf("%s: raw abuser %+v, want %d streams", name, r.Raw, p.StallStreams)
			}
			if r.Baseline == nil || r.Baseline.OK == 0 {
				t.Errorf("%s: no call completed before the stall: %+v", name, r.Baseline)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "abuse.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#### timeout-storm\n", "#### timeout-storm-raw", "#### stalled-reader", "| l7lb | 1 |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("abuse.md lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "results.jsonl")); err == nil {
		t.Error("an -abuse run wrote results.jsonl")
	}
}

// TestBalanceL7LB runs the three balancing scenarios through l7lb with
// round robin (each l7lb start waits ~2 s for two health checks), shrunk, and checks that the harness did what
// it says: the slow replica is slow, the hung one was stopped, the counters
// and the outputs are there. It does not judge l7lb's figures (the checks
// are printed, not asserted): the scenarios exist to show them.
func TestBalanceL7LB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds l7lb and runs the balancing scenarios for several seconds")
	}
	out := t.TempDir()
	p := balanceParams{
		InFlight: 8, ReqSize: 3 << 10, ReplySize: 1 << 10,
		EqualWarmup: 200 * time.Millisecond, EqualDuration: 500 * time.Millisecond,
		SlowDuration: 800 * time.Millisecond, SlowSettle: 300 * time.Millisecond, SlowDelay: 20 * time.Millisecond,
		HungDuration: 1800 * time.Millisecond, HungStopAt: 400 * time.Millisecond, HungDeadline: 700 * time.Millisecond,
		CallDeadline: 5 * time.Second, Sample: 100 * time.Millisecond, HealthWait: 10 * time.Second,
	}
	start := time.Now()
	rep, err := run(config{
		Workloads: []string{"a"}, Balance: []string{"equal", "slow", "hung"}, BalanceAlgos: []string{"rr"},
		Repeat: 1, Out: out, Workers: 2, balanceParams: &p,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("harness took %v", time.Since(start))
	if len(rep.Checks) == 0 {
		t.Error("no check lines")
	}
	f, err := os.Open(filepath.Join(out, "balance.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []BalanceRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r BalanceRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("balance.jsonl line %d: %v", len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3 (one per scenario)", len(recs))
	}
	for _, r := range recs {
		name := r.Scenario + "/" + r.Balancer
		if r.Failed != "" {
			t.Errorf("%s: failed: %s", name, r.Failed)
			continue
		}
		if r.OK == 0 || r.RPS <= 0 {
			t.Errorf("%s: no RPC completed", name)
		}
		if r.HealthyS == nil {
			t.Errorf("%s: l7lb's targets never all healthy: %v", name, r.Notes)
		}
		if len(r.Split) != 3 || sum(r.Split) == 0 {
			t.Errorf("%s: split %v", name, r.Split)
		}
		if len(r.Timeline) == 0 || len(r.ClientRPS) == 0 {
			t.Errorf("%s: no timeline", name)
		}
		switch r.Scenario {
		case "equal":
			if r.CPUusPerRPC == nil || *r.CPUusPerRPC <= 0 || r.SplitDevPct == nil {
				t.Errorf("%s: CPU %v, split deviation %v", name, r.CPUusPerRPC, r.SplitDevPct)
			}
			if r.ErrorsTotal != 0 {
				t.Errorf("%s: %d errors: %s", name, r.ErrorsTotal, r.FirstError)
			}
		case "slow":
			if r.SlowSharePct == nil || r.SlowShareAfter == nil {
				t.Errorf("%s: no slow shares", name)
			}
			// Round robin sends the slow replica its third whatever it
			// does, so its RPCs wait for the delay: the p99 shows it.
			if r.Balancer == "l7lb-rr" && r.P99ms < float64(p.SlowDelay/time.Millisecond) {
				t.Errorf("%s: p99 %.2f ms below the slow replica's delay %v", name, r.P99ms, p.SlowDelay)
			}
		case "hung":
			if r.RPSBefore == nil || r.RPSDuring == nil || r.HungGot == nil || r.LastStampS == nil {
				t.Errorf("%s: hung figures missing: before %v during %v got %v stamp %v notes %v", name, r.RPSBefore, r.RPSDuring, r.HungGot, r.LastStampS, r.Notes)
			}
			if r.Balancer == "l7lb-rr" && r.ErrorsTotal == 0 {
				// round robin had RPCs in flight on the stopped replica
				t.Errorf("%s: no RPC failed: was the replica stopped?", name)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "balance.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#### equal", "#### slow", "#### hung", "| l7lb-rr | 1 |", "Targets of issue 11", "hung: l7lb-rr failed RPCs"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("balance.md lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "results.jsonl")); err == nil {
		t.Error("a -balance run wrote results.jsonl")
	}
}
