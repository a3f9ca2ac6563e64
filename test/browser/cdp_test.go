package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// chromium is a headless Chromium driven over the DevTools protocol: a
// websocket to one page, JSON requests matched to replies by id.
type chromium struct {
	cmd *exec.Cmd
	ws  *websocket.Conn
	id  int
}

// startChromium starts the browser on about:blank and attaches to its
// page. Chromium must be installed (.ci/run installs Debian's): a missing
// browser fails the test instead of skipping it.
func startChromium(t *testing.T, ctx context.Context) *chromium {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install chromium; .ci/run does): %v", err)
	}
	// Not t.TempDir: Chromium's helper processes may still write there for
	// a moment after the browser is killed, and that must not fail the test.
	profile, err := os.MkdirTemp("", "l7lb-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+profile,
		"--remote-debugging-port=0", "--remote-allow-origins=*", "--window-size=1400,1000", "about:blank")
	cmd.WaitDelay = 5 * time.Second
	// Its own process group, so that the renderer and GPU helpers end with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})

	// Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID".
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent {
				if _, after, ok := strings.Cut(line, "DevTools listening on "); ok {
					found <- after
					sent = true
				}
			}
			if testing.Verbose() && !sent {
				t.Logf("chromium: %s", line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	var browserWS string
	select {
	case browserWS = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not print its DevTools address within 30s")
	}
	host := strings.Split(strings.TrimPrefix(browserWS, "ws://"), "/")[0]

	var pageWS string
	for i := 0; i < 50 && pageWS == ""; i++ {
		var targets []struct{ Type, WebSocketDebuggerURL string }
		if err := getJSON("http://"+host+"/json/list", &targets); err == nil {
			for _, tg := range targets {
				if tg.Type == "page" {
					pageWS = tg.WebSocketDebuggerURL
				}
			}
		}
		if pageWS == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if pageWS == "" {
		t.Fatal("chromium shows no page target")
	}
	cfg, err := websocket.NewConfig(pageWS, "http://"+host)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("DevTools websocket: %v", err)
	}
	ws.MaxPayloadBytes = 64 << 20
	t.Cleanup(func() { ws.Close() })
	return &chromium{cmd: cmd, ws: ws}
}

func getJSON(url string, into any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(into)
}

// call sends one DevTools command and waits for its reply, skipping the
// events in between (bounded by a deadline).
func (c *chromium) call(method string, params any, result any) error {
	c.id++
	id := c.id
	if err := websocket.JSON.Send(c.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < 10000; i++ {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(c.ws, &msg); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		if msg.ID != id {
			continue
		}
		if msg.Error != nil {
			return fmt.Errorf("%s: %s", method, msg.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(msg.Result, result)
		}
		return nil
	}
	return fmt.Errorf("%s: no reply among 10000 messages", method)
}

// eval evaluates a JavaScript expression in the page and decodes its
// JSON-serialisable value into out.
func (c *chromium) eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("evaluate %q: %s", expr, res.ExceptionDetails.Text)
	}
	return json.Unmarshal(res.Result.Value, out)
}

func (c *chromium) screenshot() ([]byte, error) {
	var res struct {
		Data []byte `json:"data"` // base64 in JSON, decoded by encoding/json
	}
	err := c.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &res)
	return res.Data, err
}
