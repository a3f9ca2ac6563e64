// Package browser tests the admin dashboard in a real browser: l7lb runs
// as its own process in front of the 3-replica test cluster with load,
// headless Chromium opens the dashboard, sees three healthy targets, and
// after one replica is killed sees that target turn unhealthy. The
// screenshot is kept in test/browser/artifacts.
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/milvus-io/milvus/client/v2/milvusclient"

	"github.com/l7lb/l7lb/internal/certstore"
	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/fakemilvus"
	"github.com/l7lb/l7lb/internal/lbtest"
	"github.com/l7lb/l7lb/internal/pki"
)

// binary is l7lb, built once for the tests that drive it as a process.
var binary string

func TestMain(m *testing.M) { os.Exit(lbtest.RunWithL7LB(m, &binary)) }

// Health checks every 2 s with threshold 2, so a killed replica turns
// unhealthy within seconds (the seed's Ingress plus these lines).
const fastHealth = `    alb.ingress.kubernetes.io/healthcheck-interval-seconds: "2"
    alb.ingress.kubernetes.io/healthcheck-timeout-seconds: "1"
    alb.ingress.kubernetes.io/healthy-threshold-count: "2"
    alb.ingress.kubernetes.io/unhealthy-threshold-count: "2"
`

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type row struct {
	Target string `json:"target"`
	State  string `json:"state"`
	Reason string `json:"reason"`
	RPS    string `json:"rps"`
	EWMA   string `json:"ewma"`
	Weight string `json:"weight"`
}

const rowsJS = `JSON.stringify([...document.querySelectorAll("tr.target")].map(r => ({target: r.dataset.target, state: r.dataset.state, reason: r.querySelector(".reason").textContent, rps: r.querySelector(".rps").textContent,
	ewma: r.querySelector(".ewma").textContent, weight: r.querySelector(".weight").textContent})))`

func TestDashboardShowsTargetHealth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cluster, err := fakemilvus.Start(fakemilvus.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	dir := t.TempDir()
	ca, err := pki.NewCA("browser test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{demo.ServerName}, nil, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	store, err := certstore.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := store.Import(leaf.CertPEM(), ca.CertPEM(), leaf.KeyPEM(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ing := bytes.Replace(demo.SeedIngress, []byte(demo.SeedARN), []byte(cert.ARN), 1)
	ing = bytes.Replace(ing, []byte("\n\nspec:"), []byte("\n"+fastHealth+"\nspec:"), 1)
	ingFile := filepath.Join(dir, "ingress.yaml")
	if err := os.WriteFile(ingFile, ing, 0o644); err != nil {
		t.Fatal(err)
	}

	adminAddr := freePort(t)
	addrFile := filepath.Join(dir, "addrs.json")
	accessLog := filepath.Join(dir, "access.log")
	var logs lbtest.Buffer
	serve := exec.CommandContext(ctx, binary, "serve", "-f", ingFile, "--store", storeDir,
		"--endpoints", "milvus/milvus-demo="+strings.Join(cluster.Addrs(), ","),
		"--listen", "443=127.0.0.1:0", "--addr-file", addrFile, "--admin", adminAddr,
		"--access-log", accessLog, "--drain-timeout", "2s")
	serve.Stderr = &logs
	serve.WaitDelay = 5 * time.Second
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		serve.Process.Signal(os.Interrupt)
		serve.Wait()
		if t.Failed() {
			t.Logf("l7lb's log:\n%s", logs.String())
		}
	}()
	addr := waitListening(t, addrFile, "http://"+adminAddr+"/readyz", &logs)

	// Load: a Milvus SDK client calling in a loop through l7lb.
	client, err := demo.Connect(ctx, addr, demo.ServerName, ca.Pool())
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, logs.String())
	}
	defer client.Close(context.Background())
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loadCtx.Err() == nil {
				client.ListCollections(loadCtx, milvusclient.NewListCollectionOption()) //nolint:errcheck // errors are expected once a replica is killed
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer wg.Wait()
	defer stopLoad()

	browser := startChromium(t, ctx)
	if err := browser.call("Page.enable", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := browser.call("Page.navigate", map[string]any{"url": "http://" + adminAddr + "/"}, nil); err != nil {
		t.Fatal(err)
	}

	// 1. Three healthy targets, with traffic: each has answered, so each
	// shows an EWMA latency, and at full weight (round robin dims none).
	rows := waitRows(t, browser, 60*time.Second, "three healthy targets with traffic", func(rows []row) bool {
		if len(rows) != 3 {
			return false
		}
		for _, r := range rows {
			if r.State != "healthy" || r.RPS == "0.0" || r.EWMA == "-" || r.Weight != "100%" {
				return false
			}
		}
		return true
	})
	t.Logf("dashboard before: %+v", rows)
	var algorithm string
	if err := browser.eval(`document.querySelector('h3[data-group="milvus/milvus-demo:19530"] .algorithm').textContent`, &algorithm); err != nil || algorithm != "round_robin" {
		t.Errorf("the group's algorithm on the page: %q (%v), want round_robin", algorithm, err)
	}
	saveScreenshot(t, browser, "dashboard-healthy.png")

	// 2. Kill one replica: its row turns unhealthy, live, without a reload
	// of the page.
	victim := cluster.Replicas()[0]
	victim.Kill()
	rows = waitRows(t, browser, 90*time.Second, victim.Addr()+" unhealthy", func(rows []row) bool {
		for _, r := range rows {
			if r.Target == victim.Addr() && r.State == "unhealthy" {
				return true
			}
		}
		return false
	})
	t.Logf("dashboard after killing %s: %+v", victim.Addr(), rows)
	var unhealthyReason string
	for _, r := range rows {
		if r.Target == victim.Addr() {
			unhealthyReason = r.Reason
		}
	}
	if unhealthyReason == "" {
		t.Errorf("the unhealthy target shows no reason")
	}
	var certText string
	if err := browser.eval(`document.querySelector("#certs tbody").textContent`, &certText); err != nil || !strings.Contains(certText, demo.ServerName) || !strings.Contains(certText, "days") {
		t.Errorf("certificates on the page: %q (%v)", certText, err)
	}
	saveScreenshot(t, browser, "dashboard.png")

	// The same picture from the command line and in the metrics.
	out, err := exec.CommandContext(ctx, binary, "status", "--admin", adminAddr).CombinedOutput()
	flat := strings.Join(strings.Fields(string(out)), " ")
	if err != nil || !strings.Contains(flat, "milvus/milvus-demo alb milvus-demo.milvus.io") || !strings.Contains(flat, victim.Addr()+" unhealthy") ||
		!strings.Contains(flat, "milvus/milvus-demo:19530 round_robin") {
		t.Errorf("l7lb status (%v):\n%s", err, out)
	}
	t.Logf("l7lb status:\n%s", out)
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`grpc_method="ShowCollections"`, `l7lb_tls_handshakes_total{listener="443",tls_version="1.3"}`, `l7lb_target_health_state{state="unhealthy",target="` + victim.Addr() + `",target_group="milvus/milvus-demo:19530"} 1`, `l7lb_client_connections{listener="443"} 1`,
		`l7lb_target_group_info{algorithm="round_robin",target_group="milvus/milvus-demo:19530"} 1`, `l7lb_target_latency_ewma_seconds{target="` + victim.Addr() + `"`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	stopLoad()
	wg.Wait()
	// The SDK's ListCollections is the ShowCollections RPC.
	if b, err := os.ReadFile(accessLog); err != nil || !bytes.Contains(b, []byte(`"grpc_method":"ShowCollections"`)) {
		t.Errorf("access log lacks ShowCollections lines (%v)", err)
	}
}

func waitListening(t *testing.T, addrFile, readyURL string, logs *lbtest.Buffer) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(addrFile)
		if err == nil {
			var addrs map[string]string
			if json.Unmarshal(b, &addrs) == nil && addrs["443"] != "" {
				if resp, err := http.Get(readyURL); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return addrs["443"]
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("l7lb did not become ready within 30s:\n%s", logs.String())
	return ""
}

func waitRows(t *testing.T, b *chromium, timeout time.Duration, what string, ok func([]row) bool) []row {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var rows []row
	for time.Now().Before(deadline) {
		var s string
		if err := b.eval(rowsJS, &s); err == nil {
			rows = nil
			if json.Unmarshal([]byte(s), &rows) == nil && ok(rows) {
				return rows
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	saveScreenshot(t, b, "dashboard-failed.png")
	t.Fatalf("the dashboard did not show %s within %v; last rows %+v", what, timeout, rows)
	return nil
}

// saveScreenshot keeps the page as test/browser/artifacts/NAME.
func saveScreenshot(t *testing.T, b *chromium, name string) {
	t.Helper()
	png, err := b.screenshot()
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	dir, _ := filepath.Abs("artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Error(err)
		return
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Error(err)
		return
	}
	t.Logf("dashboard screenshot: %s", path)
}
