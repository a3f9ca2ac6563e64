package main

// Starting and stopping the balancers under test: l7lb (built from the tree)
// and the peers nginx, HAProxy and Caddy (Debian packages), each as its own
// process group, all on 127.0.0.1.

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/l7lb/l7lb/internal/pki"
)

//go:embed peers/*.tmpl
var peerTemplates embed.FS

const serverName = "milvus-demo.milvus.io"

var peerNames = []string{"nginx", "haproxy", "caddy"}

// env is everything the balancers share for one benchmark run.
type env struct {
	Dir       string   // scratch directory
	Root      string   // module root (for building l7lb)
	Backends  []string // the backend's three h2c listeners
	CA        *pki.CA
	CAFile    string
	CertChain string // leaf + intermediate
	Key       string
	Combined  string // leaf + intermediate + key (HAProxy)
	L7LB      string // binary
	Prebuilt  bool   // L7LB came from -l7lb-bin, not from building the tree
	Store     string // l7lb certificate store
	ARN       string
	Ingress   string
	Workers   int
	L7LBFlags []string // extra flags for l7lb serve (-l7lb-flags)
	// -balance sets these on a copy of the env for one measurement:
	PeerBalance string   // the peers' algorithm directive (HAProxy "balance X", nginx "X;"); "" = round robin
	L7LBArgs    []string // more arguments to l7lb serve
}

func (e *env) makeCerts() error {
	ca, err := pki.NewCA("l7lb bench CA", 48*time.Hour)
	if err != nil {
		return err
	}
	inter, err := ca.NewIntermediate("l7lb bench intermediate CA")
	if err != nil {
		return err
	}
	leaf, err := inter.Issue([]string{serverName}, nil, 48*time.Hour)
	if err != nil {
		return err
	}
	dir := filepath.Join(e.Dir, "certs")
	if err := leaf.WriteFiles(dir); err != nil {
		return err
	}
	e.CA = ca
	e.CAFile = filepath.Join(dir, "ca.pem")
	e.Key = filepath.Join(dir, "PrivateKey.pem")
	e.CertChain = filepath.Join(dir, "fullchain.pem")
	full := append(leaf.CertPEM(), inter.CertPEM()...)
	if err := os.WriteFile(e.CertChain, full, 0o644); err != nil {
		return err
	}
	e.Combined = filepath.Join(dir, "haproxy.pem")
	return os.WriteFile(e.Combined, append(append([]byte{}, full...), leaf.KeyPEM()...), 0o600)
}

// buildL7LB builds the tree's l7lb, imports the certificate with
// `l7lb cert import` and writes the Ingress.
func (e *env) buildL7LB(prebuilt string) error {
	if prebuilt != "" {
		e.L7LB, e.Prebuilt = prebuilt, true
	} else {
		e.L7LB = filepath.Join(e.Dir, "l7lb")
		// Built as a release or the image is (tools/image): static, no
		// cgo (so no libc mapped), stripped.
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", e.L7LB, "./cmd/l7lb")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Dir = e.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/l7lb: %v\n%s", err, out)
		}
	}
	e.Store = filepath.Join(e.Dir, "store")
	certs := filepath.Join(e.Dir, "certs")
	out, err := exec.Command(e.L7LB, "cert", "import", "--store", e.Store,
		"--certificate", "fileb://"+filepath.Join(certs, "Certificate.pem"),
		"--certificate-chain", "fileb://"+filepath.Join(certs, "CertificateChain.pem"),
		"--private-key", "fileb://"+filepath.Join(certs, "PrivateKey.pem")).Output()
	if err != nil {
		return fmt.Errorf("l7lb cert import: %v", err)
	}
	var imp struct{ CertificateArn string }
	if err := json.Unmarshal(out, &imp); err != nil || imp.CertificateArn == "" {
		return fmt.Errorf("l7lb cert import: unexpected output %q", out)
	}
	e.ARN = imp.CertificateArn
	e.Ingress = filepath.Join(e.Dir, "ingress.yaml")
	return e.writeIngress(e.Ingress, nil)
}

// writeIngress renders the bench's Ingress to dst with extra annotation
// lines ("key: value") after the seed's.
func (e *env) writeIngress(dst string, extra []string) error {
	return e.render("ingress.yaml.tmpl", dst, map[string]any{"ARN": e.ARN, "ServerName": serverName, "Extra": extra})
}

func (e *env) render(tmpl, dst string, data any) error {
	t, err := template.ParseFS(peerTemplates, "peers/"+tmpl)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}

// running is a balancer process (group) serving on Addr.
type running struct {
	Name string
	Addr string
	TLS  bool
	Pid  int // root of the process tree whose CPU and memory are counted
	cmd  *exec.Cmd
	log  string
}

func (r *running) target(e *env) Target {
	return Target{Addr: r.Addr, TLS: r.TLS, ServerName: serverName, Roots: e.CA.Pool()}
}

func (r *running) Stop() {
	if r == nil || r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) // our own process group
		<-done
	}
	// nginx workers may outlive a killed master for a moment; the group is ours.
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startProcess(name, logFile string, extraEnv []string, bin string, args ...string) (*exec.Cmd, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	lf.Close()
	return cmd, nil
}

func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startBalancer starts name ("direct", "l7lb", "nginx", "haproxy", "caddy")
// and waits until an RPC gets through it.
func startBalancer(e *env, name string, seq int) (*running, error) {
	if name == "direct" {
		return &running{Name: name, Addr: e.Backends[0], TLS: false}, nil
	}
	dir := filepath.Join(e.Dir, fmt.Sprintf("%s-%03d", name, seq))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &running{Name: name, TLS: true, log: filepath.Join(dir, name+".log")}
	var err error
	switch name {
	case "l7lb":
		addrFile := filepath.Join(dir, "addr.json")
		args := []string{"serve",
			"-f", e.Ingress, "--store", e.Store,
			"--endpoints", "milvus/milvus-demo=" + strings.Join(e.Backends, ","),
			"--listen", "443=127.0.0.1:0", "--addr-file", addrFile,
			"--log-level", "warn", "--drain-timeout", "1s"}
		r.cmd, err = startProcess(name, r.log, nil, e.L7LB, append(append(args, e.L7LBFlags...), e.L7LBArgs...)...)
		if err != nil {
			return nil, err
		}
		for i := 0; i < 300; i++ {
			b, rerr := os.ReadFile(addrFile)
			var m map[string]string
			if rerr == nil && json.Unmarshal(b, &m) == nil && m["443"] != "" {
				r.Addr = m["443"]
				break
			}
			if r.cmd.ProcessState != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if r.Addr == "" {
			r.Stop()
			return nil, fmt.Errorf("l7lb did not write %s:\n%s", addrFile, tail(r.log, 20))
		}
	case "nginx", "haproxy", "caddy":
		port, perr := freePort()
		if perr != nil {
			return nil, perr
		}
		r.Addr = "127.0.0.1:" + strconv.Itoa(port)
		data := map[string]any{
			"Dir": dir, "Workers": e.Workers, "Backends": e.Backends, "Listen": r.Addr,
			"Host": "127.0.0.1", "Port": port, "ServerName": serverName,
			"CertChain": e.CertChain, "Key": e.Key, "CombinedPEM": e.Combined,
			"Balance": e.PeerBalance,
		}
		bin := peerBinary(name)
		switch name {
		case "nginx":
			conf := filepath.Join(dir, "nginx.conf")
			if err = e.render("nginx.conf.tmpl", conf, data); err == nil {
				r.cmd, err = startProcess(name, r.log, nil, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log"))
			}
		case "haproxy":
			conf := filepath.Join(dir, "haproxy.cfg")
			if err = e.render("haproxy.cfg.tmpl", conf, data); err == nil {
				r.cmd, err = startProcess(name, r.log, nil, bin, "-db", "-f", conf)
			}
		case "caddy":
			conf := filepath.Join(dir, "Caddyfile")
			if err = e.render("Caddyfile.tmpl", conf, data); err == nil {
				r.cmd, err = startProcess(name, r.log,
					[]string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir},
					bin, "run", "--config", conf, "--adapter", "caddyfile")
			}
		}
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown balancer %q", name)
	}
	r.Pid = r.cmd.Process.Pid
	if err := probe(r.target(e), 15*time.Second); err != nil {
		r.Stop()
		return nil, fmt.Errorf("%s is not serving on %s: %v\n%s", name, r.Addr, err, tail(r.log, 20))
	}
	if name == "nginx" {
		// wait until both workers are up, so their CPU is counted from the start
		for i := 0; i < 100 && len(procTree(r.Pid)) < e.Workers+1; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return r, nil
}

func peerBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

var candidateRE = regexp.MustCompile(`(?m)^\s*Candidate:\s*(\S+)`)

// ensurePeer installs the Debian package for a peer when its binary is
// missing (and install is allowed). It returns a note when the peer is
// skipped.
func ensurePeer(name string, install bool) (skipNote string) {
	if peerBinary(name) != "" {
		return ""
	}
	if !install {
		return fmt.Sprintf("%s: not installed and -install=false; skipped", name)
	}
	out, err := exec.Command("apt-cache", "policy", name).CombinedOutput()
	m := candidateRE.FindSubmatch(out)
	if err != nil || m == nil || string(m[1]) == "(none)" {
		return fmt.Sprintf("%s: no Debian package candidate (apt-cache policy %s); skipped", name, name)
	}
	fmt.Printf("installing %s %s from Debian (apt-get install -y %s)\n", name, m[1], name)
	cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", name)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("%s: apt-get install failed (%v): %s; skipped", name, err, tail2(out))
	}
	if peerBinary(name) == "" {
		return fmt.Sprintf("%s: installed but binary not found; skipped", name)
	}
	return ""
}

func tail2(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[len(s)-300:]
	}
	return s
}

// versionOf returns a balancer's version line.
func versionOf(e *env, name string) string {
	var out []byte
	var err error
	switch name {
	case "direct":
		return "grpc-go client → backend, h2c"
	case "l7lb":
		out, err = exec.Command(e.L7LB, "version").CombinedOutput()
		s := firstLine(strings.TrimSpace(string(out)))
		if e.Prebuilt {
			// not necessarily the tree's: name the binary itself
			if b, rerr := os.ReadFile(e.L7LB); rerr == nil {
				sum := sha256.Sum256(b)
				s += fmt.Sprintf(" (-l7lb-bin %s, sha256 %s)", e.L7LB, hex.EncodeToString(sum[:])[:12])
			}
		} else if rev := gitRev(e.Root); rev != "" {
			s += " (tree " + rev + ")"
		}
		return s
	case "nginx":
		out, err = exec.Command(peerBinary(name), "-v").CombinedOutput()
	case "haproxy":
		out, err = exec.Command(peerBinary(name), "-v").CombinedOutput()
	case "caddy":
		out, err = exec.Command(peerBinary(name), "version").CombinedOutput()
	}
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	return firstLine(strings.TrimSpace(string(out)))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// gitRev names the source l7lb was built from: the commit, and when the
// working tree differs from it, a hash of every file under cmd/ and internal/
// plus go.mod and go.sum (the tree may be mid-rewrite).
func gitRev(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", "cmd", "internal", "go.mod", "go.sum").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += " + uncommitted changes, source sha256 " + sourceHash(root)
	}
	return rev
}

func sourceHash(root string) string {
	h := sha256.New()
	for _, top := range []string{"go.mod", "go.sum", "cmd", "internal"} {
		_ = filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			fmt.Fprintf(h, "%s %d\n", rel, len(b))
			h.Write(b)
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// backendProc is the backend process.
type backendProc struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	Addrs []string
	Pid   int
}

func startBackend(dir string) (*backendProc, error) {
	return startBackendArgs(dir, "backend.log", "3")
}

// startBackendArgs starts a backend process with runBackend's arguments,
// logging its stderr to dir/logName.
func startBackendArgs(dir, logName string, args ...string) (*backendProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"backend"}, args...)...)
	cmd.Env = append(os.Environ(), backendEnv+"=1")
	lf, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd.Stderr = lf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		var acc []byte
		for i := 0; i < 1000; i++ {
			n, err := stdout.Read(buf)
			acc = append(acc, buf[:n]...)
			if j := bytes.IndexByte(acc, '\n'); j >= 0 {
				line <- string(acc[:j])
				return
			}
			if err != nil {
				line <- string(acc)
				return
			}
		}
		line <- ""
	}()
	var l string
	select {
	case l = <-line:
	case <-time.After(20 * time.Second):
	}
	rest, ok := strings.CutPrefix(l, "LISTEN ")
	if !ok {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.New("backend did not report its listeners: " + l + tail(filepath.Join(dir, logName), 10))
	}
	return &backendProc{cmd: cmd, stdin: stdin, Addrs: strings.Split(rest, ","), Pid: cmd.Process.Pid}, nil
}

func (b *backendProc) Stop() {
	b.stdin.Close()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
}
