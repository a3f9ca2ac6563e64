package certstore

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/l7lb/l7lb/internal/kubeclient"
)

// KubeFlags are the --kubernetes flags of the AWS-twin commands (cert
// import, truststore): the store is Secrets in a namespace of the cluster
// kubectl would talk to.
type KubeFlags struct {
	Enabled    bool
	Namespace  string
	Kubeconfig string
}

// Register adds --kubernetes, --namespace and --kubeconfig to fs; what is
// the store's object (certificate, trust store) goes into the help text.
func (k *KubeFlags) Register(fs *flag.FlagSet, what string) {
	fs.BoolVar(&k.Enabled, "kubernetes", false, "use the cluster's "+what+" store (Secrets) instead of a local directory")
	fs.StringVar(&k.Namespace, "namespace", KubeDefaultNamespace, "with --kubernetes: the controller's certificate and trust store namespace (its --cert-namespace)")
	fs.StringVar(&k.Kubeconfig, "kubeconfig", "", "with --kubernetes: kubeconfig file (default $KUBECONFIG, ~/.kube/config, or in-cluster)")
}

// Client builds a client for the cluster: --kubeconfig, else $KUBECONFIG,
// else ~/.kube/config when it exists, else the in-cluster configuration.
func (k *KubeFlags) Client() (*kubeclient.Clientset, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.Kubeconfig != "" {
		rules.ExplicitPath = k.Kubeconfig
	} else if os.Getenv("KUBECONFIG") == "" {
		if _, err := os.Stat(rules.GetDefaultFilename()); err != nil {
			rules = &clientcmd.ClientConfigLoadingRules{} // in-cluster
		}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes configuration: %w", err)
	}
	client, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return client, nil
}

// kubeImportFlags are `cert import --kubernetes`, plus --certificate-arn
// (which the directory store uses too).
type kubeImportFlags struct {
	KubeFlags
	arn string
}

func kubeFlags(fs *flag.FlagSet) *kubeImportFlags {
	k := &kubeImportFlags{}
	k.Register(fs, "certificate")
	fs.StringVar(&k.arn, "certificate-arn", "", "re-import under this ARN, replacing its certificate (as ACM's import-certificate --certificate-arn); in a directory store the ARN must exist, with --kubernetes it may be any ARN, e.g. one an Ingress already names")
	return k
}

func (k *kubeImportFlags) importPEMs(ctx context.Context, certPEM, chainPEM, keyPEM []byte) (Certificate, []string, error) {
	client, err := k.Client()
	if err != nil {
		return Certificate{}, nil, err
	}
	return KubeStore{Client: client, Namespace: k.Namespace}.Import(ctx, certPEM, chainPEM, keyPEM, k.arn, time.Now())
}
