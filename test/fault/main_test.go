// Package fault is issue 4's fault suite: a steady load from the official
// Milvus Go SDK (Search and Insert) through l7lb to the 3-replica Milvus
// test backend while replicas die, turn NOT_SERVING, answer
// ServiceNotReady, leave the EndpointSlice file, restart one after another
// or all go down, and while l7lb itself gets SIGTERM or a broken file.
//
// Every case prints "case X: sent=... failed=... rows_lost=..." and the
// suite prints all of them again at the end. The load lasts
// L7LB_FAULT_DURATION (or -fault.duration), default 20s, per case; cases
// run in parallel (default -parallel 4: the load is paced by a server-side
// delay, so it needs little CPU).
//
//	go test -count=1 -v ./test/fault/
//	L7LB_FAULT_DURATION=6s go test -count=1 -v -run 'TestFault/^b' ./test/fault/
//
// The l7lb binary for the process cases (d, g, h) is built from
// ./cmd/l7lb once, or taken from $L7LB_BINARY.
package fault

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	milvuslog "github.com/milvus-io/milvus/pkg/v2/log"
	"go.uber.org/zap/zapcore"
)

var durationFlag = flag.Duration("fault.duration", 0, "load duration per case (default $L7LB_FAULT_DURATION, else 20s)")

// loadDuration is how long each case keeps its load running.
func loadDuration(t testing.TB) time.Duration {
	if *durationFlag > 0 {
		return *durationFlag
	}
	if v := os.Getenv("L7LB_FAULT_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("L7LB_FAULT_DURATION=%q: want a positive Go duration like 20s", v)
		}
		return d
	}
	return 20 * time.Second
}

var (
	summaryMu sync.Mutex
	summary   = map[string]string{}
)

// report records a case's closing-note line and logs it: the numbers
// every case has (RPCs, rows), then the case's own detail, formatted from
// format and args.
func report(t *testing.T, id string, ty tally, rw rows, format string, args ...any) {
	line := fmt.Sprintf("case %s: sent=%d failed=%d rows_lost=%d (%s; %s; %s)", id, ty.sent, ty.failed, rw.lost, ty, rw, fmt.Sprintf(format, args...))
	t.Log(line)
	summaryMu.Lock()
	summary[id] = line
	summaryMu.Unlock()
}

var (
	buildOnce sync.Once
	binPath   string
	binDir    string
	buildErr  error
)

// l7lbBinary builds cmd/l7lb once (or uses $L7LB_BINARY).
func l7lbBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("L7LB_BINARY"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "l7lb-fault-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "l7lb")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/l7lb/l7lb/cmd/l7lb").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build l7lb: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			parallelSet = true
		}
	})
	if !parallelSet {
		flag.Set("test.parallel", "4") //nolint:errcheck // the flag exists
	}
	// The SDK logs every failed call at WARN on stdout; the cases count
	// failures themselves.
	milvuslog.SetLevel(zapcore.ErrorLevel)
	start := time.Now()
	code := m.Run()
	summaryMu.Lock()
	if len(summary) > 0 {
		ids := make([]string, 0, len(summary))
		for id := range summary {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		fmt.Printf("fault suite summary (%s total):\n", time.Since(start).Round(time.Second))
		for _, id := range ids {
			fmt.Println("  " + summary[id])
		}
	}
	summaryMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}
