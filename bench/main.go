// Command bench (go run ./bench) measures l7lb against nginx, HAProxy and
// Caddy as TLS-terminating gRPC balancers on loopback, and against a client
// talking straight to one backend ("direct"), on the workloads of the
// performance issue. See bench/README.md.
//
//	go run ./bench -peers nginx,haproxy,caddy -duration 5s -repeat 3 -out bench/results
//	go run ./bench -quick          # seconds: direct + l7lb, 1 s windows, 1 repeat
//	go run ./bench -abuse all -peers haproxy -out /tmp/abuse   # abuse scenarios (abuse.go)
//	go run ./bench -balance all -peers haproxy,nginx -out /tmp/balance   # balancing algorithms (balance.go)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type config struct {
	Peers     []string
	Workloads []string
	Duration  time.Duration
	Warmup    time.Duration
	Repeat    int
	Out       string
	Quick     bool
	Install   bool
	L7LBBin   string
	Root      string
	Workers   int
	Direct    bool
	Keep      bool
	Strict    bool
	Quiet     bool
	Abuse     []string // -abuse: scenarios to run instead of the workloads
	Idle      int      // -idle: idle connections to open instead of the workloads
	L7LBFlags []string // -l7lb-flags: extra flags for l7lb serve (experiments)
	Balance   []string // -balance: balancing scenarios to run instead of the workloads
	// BalanceAlgos are the l7lb algorithms -balance measures (rr, lor,
	// wr, ewma); empty: all.
	BalanceAlgos []string

	abuseParams   *abuseParams   // nil: defaultAbuseParams (tests shrink them)
	balanceParams *balanceParams // nil: defaultBalanceParams
	idleParams    *idleParams    // nil: defaultIdleParams
}

func main() {
	if (len(os.Args) > 1 && os.Args[1] == "backend") || os.Getenv(backendEnv) == "1" {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "backend" {
			args = args[1:]
		}
		if err := runBackend(args); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	var peers, workloads string
	flag.StringVar(&peers, "peers", "", "peers to measure besides l7lb and direct: comma-separated from nginx,haproxy,caddy, or \"all\"; installed from Debian when missing")
	flag.StringVar(&workloads, "workloads", "a,b,c,d,e,f", "workloads to run, comma-separated")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window per workload × balancer × run")
	flag.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "warm-up before each measured window")
	flag.IntVar(&cfg.Repeat, "repeat", 3, "runs per workload × balancer (medians and min–max over them)")
	flag.StringVar(&cfg.Out, "out", "", "output directory (default <module root>/bench/results)")
	flag.BoolVar(&cfg.Quick, "quick", false, "smoke test: 1 s windows, 0.5 s warm-up, 1 run, direct + l7lb only")
	flag.BoolVar(&cfg.Install, "install", true, "apt-get install a requested peer whose binary is missing")
	flag.StringVar(&cfg.L7LBBin, "l7lb-bin", "", "use this l7lb binary instead of building ./cmd/l7lb")
	flag.IntVar(&cfg.Workers, "workers", 2, "worker processes/threads for nginx and HAProxy")
	flag.BoolVar(&cfg.Direct, "direct", true, "measure the direct baseline (client → one backend, h2c)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the scratch directory (configs, logs)")
	flag.BoolVar(&cfg.Strict, "strict", false, "exit 3 when a target of issue 3 fails")
	abuse := flag.String("abuse", "", "run abuse scenarios instead of the workloads, comma-separated from timeout-storm,timeout-storm-raw,stalled-reader, or \"all\"; against l7lb and -peers (no direct), 1 run unless -repeat is given, results in -out/abuse.{md,jsonl}")
	flag.IntVar(&cfg.Idle, "idle", 0, "run the idle mode instead of the workloads: this many TLS HTTP/2 connections, one RPC each, then idle (RSS per connection, PING check), and 1000 silent TCP connections (held after 15 s?); against l7lb and -peers, results in -out/idle.{md,jsonl}")
	l7lbFlags := flag.String("l7lb-flags", "", "extra flags for l7lb serve, space-separated (for experiments, e.g. \"--gc-heap-floor-mib 8\")")
	balance := flag.String("balance", "", "run balancing scenarios instead of the workloads, comma-separated from equal,slow,hung, or \"all\"; l7lb with each algorithm (-algorithms) against -peers haproxy (balance leastconn) and nginx (least_conn), 1 run unless -repeat is given, results in -out/balance.{md,jsonl}")
	flag.Float64Var(&defaultBalanceParams.EqualRate, "equal-rate", defaultBalanceParams.EqualRate, "with -balance equal: RPCs per second in all, paced (0: back to back, the default; paced runs cost more CPU per RPC and vary more)")
	algorithms := flag.String("algorithms", "all", "with -balance: l7lb algorithms to measure, comma-separated from rr,lor,wr,ewma, or \"all\"")
	readme := flag.Bool("update-readme", false, "copy bench/results/README-section.md into README.md's performance section, and exit")
	flag.Parse()
	if *readme {
		if err := updateReadme(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if peers == "all" {
		peers = strings.Join(peerNames, ",")
	}
	cfg.L7LBFlags = strings.Fields(*l7lbFlags)
	cfg.Peers = splitList(peers)
	cfg.Workloads = splitList(workloads)
	if cfg.Quick {
		cfg.Duration, cfg.Warmup, cfg.Repeat, cfg.Peers = time.Second, 500*time.Millisecond, 1, nil
	}
	if *abuse == "all" {
		*abuse = "timeout-storm,timeout-storm-raw,stalled-reader"
	}
	if cfg.Idle > 0 {
		cfg.Direct = false
		repeatSet := false
		flag.Visit(func(f *flag.Flag) { repeatSet = repeatSet || f.Name == "repeat" })
		if !repeatSet {
			cfg.Repeat = 1
		}
	}
	if cfg.Abuse = splitList(*abuse); len(cfg.Abuse) > 0 {
		// The abusers speak TLS to a balancer: no direct baseline. One run
		// unless asked for more (each scenario takes 6–12 s per balancer).
		cfg.Direct = false
		repeatSet := false
		flag.Visit(func(f *flag.Flag) { repeatSet = repeatSet || f.Name == "repeat" })
		if !repeatSet {
			cfg.Repeat = 1
		}
	}
	if *balance == "all" {
		*balance = strings.Join(balanceScenarios, ",")
	}
	if cfg.Balance = splitList(*balance); len(cfg.Balance) > 0 {
		if len(cfg.Abuse) > 0 {
			fmt.Fprintln(os.Stderr, "bench: -abuse and -balance are separate runs")
			os.Exit(2)
		}
		if *algorithms != "all" {
			cfg.BalanceAlgos = splitList(*algorithms)
		}
		cfg.Direct = false
		repeatSet := false
		flag.Visit(func(f *flag.Flag) { repeatSet = repeatSet || f.Name == "repeat" })
		if !repeatSet {
			cfg.Repeat = 1
		}
	}
	rep, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if cfg.Strict && !rep.AllPass {
		os.Exit(3)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 64; i++ {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/l7lb/l7lb") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no go.mod of github.com/l7lb/l7lb above the working directory")
}
