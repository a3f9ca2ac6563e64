// Package kube tests `l7lb controller` against a real Kubernetes API server
// (kube-apiserver v1.37.2 with etcd, both on loopback), installed by
// tools/kube/install.sh.
package kube

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/l7lb/l7lb/internal/kubeclient"
)

const kubeVersion = "v1.37.2"

// apiServer is etcd plus kube-apiserver, shared by the package's tests.
type apiServer struct {
	url     string
	token   string
	dir     string
	cfg     *rest.Config
	client  *kubeclient.Clientset // what l7lb controller builds, so the tests run it against the real API
	kubectl string                // path, "" if not installed
	stop    func()
}

var shared *apiServer

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "l7lb-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := startAPIServer(dir)
	if err != nil {
		// A missing API server is a failure, never a skip: these tests are
		// the only ones that exercise the controller against the real API.
		fmt.Fprintf(os.Stderr, "FAIL test/kube: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	shared = s
	code := m.Run()
	s.stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binDir is where tools/kube/install.sh puts the binaries.
func binDir() string {
	if d := os.Getenv("L7LB_KUBE_BIN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "l7lb")
}

func findBinaries() (etcd, apiserver, kubectl string, err error) {
	const hint = "run tools/kube/install.sh (apt-installs etcd-server, builds kube-apiserver " + kubeVersion + " into ~/.cache/l7lb)"
	etcd, err = exec.LookPath("etcd")
	if err != nil {
		return "", "", "", fmt.Errorf("etcd not found on PATH: %s", hint)
	}
	apiserver = filepath.Join(binDir(), "kube-apiserver-"+kubeVersion)
	if _, err := os.Stat(apiserver); err != nil {
		return "", "", "", fmt.Errorf("%s missing: %s", apiserver, hint)
	}
	kubectl = filepath.Join(binDir(), "kubectl-"+kubeVersion)
	if _, err := os.Stat(kubectl); err != nil {
		kubectl = ""
	}
	return etcd, apiserver, kubectl, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startAPIServer(dir string) (*apiServer, error) {
	etcdBin, apiBin, kubectl, err := findBinaries()
	if err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	etcd := exec.Command(etcdBin,
		"--name", "test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL, "--log-level", "error")
	etcdLog, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	etcd.Stdout, etcd.Stderr = etcdLog, etcdLog
	var procs []*process
	stop := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].kill()
		}
	}
	p, err := start(etcd)
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	procs = append(procs, p)

	// The service-account signing key the API server requires, made here
	// so nothing secret is checked in.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		stop()
		return nil, err
	}
	keyFile := filepath.Join(dir, "sa.key")
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	token := rand.Text()
	tokens := filepath.Join(dir, "tokens.csv")
	for name, data := range map[string][]byte{
		keyFile:                      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		filepath.Join(dir, "sa.pub"): pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		tokens:                       []byte(token + ",admin,admin,system:masters\n"),
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			stop()
			return nil, err
		}
	}
	url := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	api := exec.Command(apiBin,
		"--etcd-servers", clientURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(ports[2]),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", keyFile,
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--enable-priority-and-fairness=false",
		// Loopback is not a valid address for the kubernetes Service's
		// endpoints, and nothing here needs them.
		"--endpoint-reconciler-type", "none",
		"--v", "1",
	)
	apiLog, err := os.Create(filepath.Join(dir, "apiserver.log"))
	if err != nil {
		stop()
		return nil, err
	}
	api.Stdout, api.Stderr = apiLog, apiLog
	apiProc, err := start(api)
	if err != nil {
		stop()
		return nil, fmt.Errorf("starting kube-apiserver: %w", err)
	}
	procs = append(procs, apiProc)
	cfg := &rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 100, Burst: 200}
	if err := waitReady(cfg, apiProc.done, 2*time.Minute); err != nil {
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "apiserver.log"))
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		return nil, fmt.Errorf("kube-apiserver not ready: %w\n%s", err, log)
	}
	client, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		stop()
		return nil, err
	}
	s := &apiServer{url: url, token: token, dir: dir, cfg: cfg, client: client, kubectl: kubectl, stop: stop}
	if err := s.writeKubeconfig(); err != nil {
		stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls /readyz until it answers ok.
func waitReady(cfg *rest.Config, exited <-chan struct{}, within time.Duration) error {
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	var last error = errors.New("no answer yet")
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("kube-apiserver exited")
		default:
		}
		resp, err := hc.Get(cfg.Host + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	return last
}

func (s *apiServer) kubeconfigPath() string { return filepath.Join(s.dir, "kubeconfig") }

func (s *apiServer) writeKubeconfig() error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, s.url, s.token)
	return os.WriteFile(s.kubeconfigPath(), []byte(cfg), 0o600)
}

// kubectlRun runs the built kubectl against the test API server.
func (s *apiServer) kubectlRun(ctx context.Context, dir string, args ...string) (string, error) {
	if s.kubectl == "" {
		return "", errors.New("kubectl not installed: run tools/kube/install.sh")
	}
	cmd := exec.CommandContext(ctx, s.kubectl, append([]string{"--kubeconfig", s.kubeconfigPath()}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// process is a started command whose exit is noticed.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func start(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait() //nolint:errcheck // exit status is irrelevant; done says it ended
		close(p.done)
	}()
	return p, nil
}

func (p *process) kill() {
	p.cmd.Process.Kill() //nolint:errcheck // may have exited already
	<-p.done
}
