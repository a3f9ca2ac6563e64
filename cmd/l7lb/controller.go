package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/l7lb/l7lb/internal/config"
	"github.com/l7lb/l7lb/internal/controller"
	"github.com/l7lb/l7lb/internal/kubeclient"
	"github.com/l7lb/l7lb/internal/runtime"
)

// runController runs `l7lb controller`: the in-cluster Ingress controller.
func runController(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("l7lb controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf serveFlags // listener flags shared with serve
	var classes, publish stringList
	classes.split, publish.split = true, true
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (default: in-cluster configuration)")
	namespace := fs.String("namespace", podNamespace(), "l7lb's own namespace: the Lease and the certificate store's Secrets")
	certNS := fs.String("cert-namespace", "", "namespace of the certificate and trust store Secrets (default --namespace)")
	fs.Var(&classes, "class", "also serve these ingress classes, comma-separated, e.g. alb for the seed's ingress.yaml (IngressClasses with controller "+controller.ControllerName+" are always served)")
	fs.Var(&publish, "publish-address", "IPs or host names to write into status.loadBalancer, comma-separated")
	publishSvc := fs.String("publish-service", "", "NAMESPACE/NAME of l7lb's Service whose load-balancer addresses go into status (when --publish-address is not given)")
	lease := fs.String("lease", "l7lb-controller", "Lease for leader election (empty: no election, this replica always writes)")
	identity := fs.String("identity", podName(), "this replica's name in the Lease")
	healthAddr := fs.String("health-address", ":10254", "address for /healthz and /readyz (empty: none)")
	shutdownDelay := fs.Duration("shutdown-delay", 5*time.Second, "on SIGTERM, report not ready this long before draining, so endpoints drop this replica first")
	fs.Var(&sf.listen, "listen", "bind a listener somewhere else: PORT=HOST:PORT, e.g. 443=127.0.0.1:8443; repeatable")
	fs.StringVar(&sf.internalAddr, "internal-address", "127.0.0.1", "address for listeners of scheme internal")
	fs.DurationVar(&sf.drain, "drain-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long in-flight requests may take to finish")
	fs.DurationVar(&sf.idle, "idle-timeout", 60*time.Second, "close client connections without streams after this long")
	fs.StringVar(&sf.log.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&sf.log.format, "log-format", "text", "text or json")
	sf.limits.register(fs)
	sf.obs.register(fs) // --admin (metrics), --pprof, --access-log, --access-log-sample
	log, bind, ok := sf.parseStartup(fs, args, stderr)
	if !ok {
		return 2
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		log.Error("no Kubernetes configuration", "error", err)
		return 1
	}
	// The four API groups the controller uses, not kubernetes.NewForConfig's
	// client for every group (issue 13).
	client, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		log.Error("Kubernetes client", "error", err)
		return 1
	}
	ctl, err := controller.New(controller.Options{
		Client: client, Log: log, Namespace: *namespace, CertNamespace: *certNS,
		Classes: classes.values, PublishAddresses: publish.values, PublishService: *publishSvc,
		Identity: *identity, LeaseName: *lease,
	})
	if err != nil {
		log.Error("controller", "error", err)
		return 1
	}
	// Metrics, access log and admin API as in serve; each snapshot the
	// controller applies counts as a reload.
	obs, err := sf.obs.setup(log, stdout, ctl.Certificates(), classes.values)
	if err != nil {
		log.Error("cannot set up observability", "error", err)
		return 1
	}
	defer obs.shutdown()
	rtOpts := runtime.Options{Log: log, Certs: ctl.Certificates(), TrustStores: ctl.TrustStores(), Bind: bind, IdleTimeout: sf.idle, Observer: obs.Observer(), GroupEvents: obs.Metrics}
	sf.limits.apply(&rtOpts, log)
	rt := runtime.New(rtOpts)
	if err := obs.start(rt, false); err != nil {
		log.Error("cannot start the admin listener", "error", err)
		return 1
	}
	if *healthAddr != "" {
		ln, err := net.Listen("tcp", *healthAddr)
		if err != nil {
			log.Error("health address", "error", err)
			return 1
		}
		hs := &http.Server{Handler: ctl.HealthHandler(), ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ln) //nolint:errcheck // ends with Close below
		defer hs.Close()
	}
	// The controller stops at SIGTERM; the listeners drain afterwards.
	if err := ctl.Run(ctx, recordingApplier{rt, obs.RecordReload}); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("controller stopped", "error", err)
		return 1
	}
	if obs.Admin != nil {
		obs.Admin.SetReady(false)
	}
	log.Info("shutting down: not ready; draining after the shutdown delay", "delay", *shutdownDelay, "drain", sf.drain)
	time.Sleep(*shutdownDelay)
	drainAndStop(log, rt, sf.drain)
	return 0
}

// recordingApplier applies the controller's snapshots and counts each as
// a reload (l7lb_config_reloads_total, the admin API's last reload).
type recordingApplier struct {
	rt     *runtime.Runtime
	record func(ok bool, err error)
}

func (a recordingApplier) Apply(snap *config.Snapshot) error {
	err := a.rt.Apply(snap)
	a.record(err == nil, err)
	return err
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return rest.InClusterConfig()
}

// podNamespace is the namespace the pod runs in (POD_NAMESPACE from the
// downward API, else the service account's), or l7lb's default.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return "l7lb"
}

func podName() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}
