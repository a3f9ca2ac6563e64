package main

import (
	"strings"
	"testing"
)

// With three or more runs, the equal scenario is judged on medians: one
// run whose split or CPU is off (a window the scheduler skewed) does not
// fail an algorithm whose other runs are fine, and an algorithm that is
// off in most runs still fails.
func TestEqualJudgedOnMedians(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	var recs []BalanceRecord
	add := func(run int, b string, dev, cpu float64) {
		recs = append(recs, BalanceRecord{Run: run, Scenario: "equal", Balancer: b, SplitDevPct: f(dev), CPUusPerRPC: f(cpu)})
	}
	for run := 1; run <= 3; run++ {
		add(run, "l7lb-rr", 0, 25)
		add(run, "l7lb-wr", 1, 25)
		add(run, "l7lb-ewma", 3, 25.5)
	}
	add(1, "l7lb-lor", 7.4, 31) // one skewed run
	add(2, "l7lb-lor", 2.0, 25)
	add(3, "l7lb-lor", 3.0, 25.5)
	r := &balanceReport{Records: recs}
	checks, _ := checkBalance(r, []string{"equal"}, 3)
	got := map[string]string{}
	for _, c := range checks {
		for _, name := range []string{"l7lb-lor", "l7lb-ewma"} {
			if strings.Contains(c.Text, name+" split") || strings.Contains(c.Text, name+" CPU") {
				key := name + map[bool]string{true: " split", false: " cpu"}[strings.Contains(c.Text, "split")]
				got[key] = c.Result
			}
		}
		if strings.HasPrefix(c.Text, "run ") {
			t.Errorf("per-run check with three runs: %s %s", c.Result, c.Text)
		}
	}
	want := map[string]string{"l7lb-lor split": "PASS", "l7lb-lor cpu": "PASS", "l7lb-ewma split": "PASS", "l7lb-ewma cpu": "PASS"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %s (checks %+v)", k, got[k], v, checks)
		}
	}

	// Off in two runs of three: fails.
	recs = recs[:0]
	for run := 1; run <= 3; run++ {
		add(run, "l7lb-rr", 0, 25)
		add(run, "l7lb-lor", map[bool]float64{true: 1, false: 8}[run == 1], map[bool]float64{true: 25, false: 28}[run == 1])
	}
	checks, all := checkBalance(&balanceReport{Records: recs}, []string{"equal"}, 3)
	if all {
		t.Fatalf("an algorithm off in two runs of three passed: %+v", checks)
	}
	fails := 0
	for _, c := range checks {
		if c.Result == "FAIL" && strings.Contains(c.Text, "l7lb-lor") {
			fails++
		}
	}
	if fails != 2 {
		t.Fatalf("want the split and the CPU check of l7lb-lor to fail, got %d failures: %+v", fails, checks)
	}
}
