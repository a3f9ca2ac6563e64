// Command dashshot draws l7lb's Grafana dashboard (charts/l7lb/dashboards/
// l7lb.json) from a live l7lb, without Grafana or Prometheus: it starts
// `l7lb serve` in front of three fakemilvus replicas, drives traffic and
// the events the panels count, scrapes /metrics every second, evaluates
// every panel's PromQL over the samples (internal/promql), lays the panels
// out on the dashboard's grid as HTML with SVG charts, and has headless
// Chromium take the screenshot.
//
//	go run ./tools/dashshot -out docs/dashboard.png
//
// It is a documentation tool, not part of the product (cmd/l7lb does not
// import it); run from the repository root. It takes about a minute: the
// build of l7lb (cached after the first), -duration of traffic, and the
// screenshot, each bounded.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/l7lb/l7lb/internal/promql"
)

func main() {
	out := flag.String("out", "docs/dashboard.png", "the screenshot (PNG)")
	htmlOut := flag.String("html", "", "also keep the rendered page here")
	dashFile := flag.String("dashboard", "charts/l7lb/dashboards/l7lb.json", "the Grafana dashboard")
	binary := flag.String("l7lb", "", "the l7lb binary (default: go build ./cmd/l7lb)")
	duration := flag.Duration("duration", 45*time.Second, "how long traffic runs and /metrics is scraped")
	interval := flag.Duration("scrape-interval", time.Second, "time between scrapes")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *duration+100*time.Second)
	defer cancel()
	if err := run(ctx, *out, *htmlOut, *dashFile, *binary, *duration, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "dashshot:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, htmlOut, dashFile, binary string, duration, interval time.Duration) error {
	start := time.Now()
	raw, err := os.ReadFile(dashFile)
	if err != nil {
		return err
	}
	dash, err := parseDashboard(raw)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "l7lb-dashshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if binary == "" {
		binary = filepath.Join(dir, "l7lb")
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if o, err := exec.CommandContext(bctx, "go", "build", "-o", binary, "./cmd/l7lb").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/l7lb: %w\n%s", err, o)
		}
		fmt.Fprintf(os.Stderr, "dashshot: built l7lb in %.1f s\n", time.Since(start).Seconds())
	}
	l, err := startLive(ctx, binary, dir)
	if err != nil {
		return err
	}
	defer l.stop()
	store := promql.NewStore()
	times, err := l.record(ctx, store, duration, interval)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "dashshot: %d scrapes over %s\n", len(times), times[len(times)-1].Sub(times[0]).Round(time.Second))

	vars := grafanaVars(max(4*interval, 4*time.Second))
	data := make([]panelData, len(dash.Panels))
	var panels, empty, failed int
	for i, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		panels++
		data[i] = evaluate(p, store, times, vars)
		switch {
		case data[i].err != nil:
			failed++
			fmt.Fprintf(os.Stderr, "dashshot: panel %q: %v\n", p.Title, data[i].err)
		case len(data[i].lines) == 0 && len(data[i].rows) == 0:
			empty++
			fmt.Fprintf(os.Stderr, "dashshot: panel %q: no data\n", p.Title)
		}
	}
	caption := fmt.Sprintf("rendered by tools/dashshot from %d scrapes of a live l7lb (3 fakemilvus replicas), %s UTC", len(times), times[len(times)-1].UTC().Format("2006-01-02 15:04"))
	page := renderHTML(dash, data, caption)
	pageFile := filepath.Join(dir, "dashboard.html")
	if err := os.WriteFile(pageFile, []byte(page), 0o644); err != nil {
		return err
	}
	if htmlOut != "" {
		if err := os.WriteFile(htmlOut, []byte(page), 0o644); err != nil {
			return err
		}
	}
	if err := screenshot(ctx, pageFile, out, pageWidth, pageHeight(dash)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "dashshot: %d panels (%d with no data, %d failed) → %s in %.1f s\n", panels, empty, failed, out, time.Since(start).Seconds())
	if failed > 0 {
		return fmt.Errorf("%d panels failed", failed)
	}
	return nil
}

// screenshot has headless Chromium (Debian's chromium, which .ci/run
// installs) load the page and write a w×h PNG, within 60 s.
func screenshot(ctx context.Context, page, out string, w, h int) error {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("chromium is not installed (apt-get install chromium): %w", err)
	}
	profile, err := os.MkdirTemp("", "l7lb-dashshot-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+profile,
		fmt.Sprintf("--window-size=%d,%d", w, h), "--screenshot="+abs, "file://"+page)
	cmd.WaitDelay = 5 * time.Second
	// Its own process group, so that the renderer and GPU helpers end with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chromium --screenshot: %w\n%s", err, o)
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		return fmt.Errorf("chromium wrote no screenshot to %s: %v", abs, err)
	}
	return nil
}
