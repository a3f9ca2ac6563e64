package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/l7lb/l7lb/internal/admin"
)

// runStatus prints what a running l7lb serves, read from its admin API:
// the Ingresses as `kubectl get ingress` lists them, then every target.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("l7lb status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", defaultAdmin, "the admin listener of the l7lb to ask (host:port or URL)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	base := *addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimSuffix(base, "/")
	var ings []admin.Ingress
	var groups []admin.Group
	for _, q := range []struct {
		path string
		into any
	}{{"/api/v1/ingresses", &ings}, {"/api/v1/targetgroups", &groups}} {
		if err := getJSON(ctx, base+q.path, q.into); err != nil {
			fmt.Fprintf(stderr, "l7lb status: %v\n", err)
			return 1
		}
	}
	printStatus(stdout, ings, groups, time.Now())
	return 0
}

func getJSON(ctx context.Context, url string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is l7lb serving with this --admin? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

func printStatus(w io.Writer, ings []admin.Ingress, groups []admin.Group, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCLASS\tHOSTS\tADDRESS\tPORTS\tAGE")
	for _, in := range ings {
		ports := make([]string, len(in.Ports))
		for i, p := range in.Ports {
			ports[i] = strconv.Itoa(p)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.Name, dash(in.Class), dash(strings.Join(in.Hosts, ",")), dash(in.Address), dash(strings.Join(ports, ", ")), age(in.Since, now))
	}
	tw.Flush()
	fmt.Fprintln(w)
	// The algorithm is per group: a table of its own instead of a column
	// repeated on every target row, which is wide enough already.
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "TARGET GROUP\tALGORITHM\tHEALTHY")
	for _, g := range groups {
		healthy := 0
		for _, t := range g.Targets {
			if t.State == "healthy" {
				healthy++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\n", g.Name, dash(g.Algorithm), healthy, len(g.Targets))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "TARGET GROUP\tTARGET\tSTATE\tREASON\tIN-FLIGHT\tRPS\tP99\tEWMA\tWEIGHT")
	for _, g := range groups {
		if len(g.Targets) == 0 {
			fmt.Fprintf(tw, "%s\t<none>\t-\t-\t-\t-\t-\t-\t-\n", g.Name)
		}
		for _, t := range g.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.1f\t%s\t%s\t%s\n", g.Name, t.Address, t.State, dash(t.Reason), t.InFlight,
				t.LastMinute.RPS, latency(t.LastMinute.P99MS), latency(t.LatencyEWMAMs), weight(t.Weight, t.Anomalous))
		}
	}
	tw.Flush()
}

// weight prints a target's weight as a share of a healthy peer's, and
// anomaly mitigation's judgement beside it: a target can be anomalous at
// full weight (judged, not yet dimmed) or dimmed and no longer anomalous
// (winning its share back).
func weight(w float64, anomalous bool) string {
	// Weights are thousandths: one decimal of a percent shows them all.
	s := strconv.FormatFloat(math.Round(w*1000)/10, 'f', -1, 64) + "%"
	if anomalous {
		s += " anomalous"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// latency prints a latency in milliseconds (the p99 or the EWMA), "-"
// when there is none.
func latency(ms float64) string {
	if ms == 0 {
		return "-"
	}
	return (time.Duration(ms * float64(time.Millisecond))).Round(10 * time.Microsecond).String()
}

// age prints a duration as kubectl does: 45s, 12m, 5h, 3d.
func age(since, now time.Time) string {
	if since.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(since)
	switch {
	case d < 2*time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < 2*time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}
