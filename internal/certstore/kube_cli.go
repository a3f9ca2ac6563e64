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

// kubeImportFlags are `cert import --kubernetes`: the store is Secrets in
// a namespace of the cluster kubectl would talk to.
type kubeImportFlags struct {
	enabled    bool
	namespace  string
	kubeconfig string
	arn        string
}

func kubeFlags(fs *flag.FlagSet) *kubeImportFlags {
	k := &kubeImportFlags{}
	fs.BoolVar(&k.enabled, "kubernetes", false, "import into the cluster's certificate store (Secrets) instead of a local directory")
	fs.StringVar(&k.namespace, "namespace", KubeDefaultNamespace, "with --kubernetes: the controller's namespace")
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "with --kubernetes: kubeconfig file (default $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVar(&k.arn, "certificate-arn", "", "re-import under this ARN, replacing its certificate (as ACM's import-certificate --certificate-arn); in a directory store the ARN must exist, with --kubernetes it may be any ARN, e.g. one an Ingress already names")
	return k
}

func (k *kubeImportFlags) importPEMs(ctx context.Context, certPEM, chainPEM, keyPEM []byte) (Certificate, []string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.kubeconfig != "" {
		rules.ExplicitPath = k.kubeconfig
	} else if os.Getenv("KUBECONFIG") == "" {
		if _, err := os.Stat(rules.GetDefaultFilename()); err != nil {
			rules = &clientcmd.ClientConfigLoadingRules{} // in-cluster
		}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return Certificate{}, nil, fmt.Errorf("kubernetes configuration: %w", err)
	}
	client, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		return Certificate{}, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return KubeStore{Client: client, Namespace: k.namespace}.Import(ctx, certPEM, chainPEM, keyPEM, k.arn, time.Now())
}
