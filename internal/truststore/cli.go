package truststore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/l7lb/l7lb/internal/certstore"
)

const usageText = `usage: l7lb truststore <command> [flags]

The local twin of the ALB's trust stores (aws elbv2 ...-trust-store[s]):

  create    (create-trust-store)     --name NAME --ca-certificates-bundle fileb://ca-bundle.pem
  list      (describe-trust-stores)
  describe  (describe-trust-stores)  --trust-store-arns ARN [ARN...] | --names NAME [NAME...]
  modify    (modify-trust-store)     --trust-store-arn ARN --ca-certificates-bundle fileb://ca-bundle.pem
  delete    (delete-trust-store)     --trust-store-arn ARN

Every command takes --store DIR: the certificate store's directory
(default $L7LB_CERT_STORE, else $XDG_DATA_HOME/l7lb/certificates, else
~/.local/share/l7lb/certificates); trust stores live in its truststores/.
Or, as cert import: --kubernetes [--namespace NS] [--kubeconfig F], the
controller's store: Secrets in its certificate namespace (default l7lb).
`

// Command runs `l7lb truststore ...`; args are the words after
// "truststore". Output is the AWS CLI's JSON; the exit status is 0 ok,
// 1 failure, 2 usage.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	var run func(context.Context, []string, io.Writer, io.Writer) error
	switch args[0] {
	case "create", "create-trust-store":
		run = cmdCreate
	case "list":
		run = cmdList
	case "describe", "describe-trust-stores":
		run = cmdDescribe
	case "modify", "modify-trust-store":
		run = cmdModify
	case "delete", "delete-trust-store":
		run = cmdDelete
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return 0
	default:
		fmt.Fprintf(stderr, "l7lb truststore: unknown command %q\n%s", args[0], usageText)
		return 2
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(stderr, "l7lb truststore: %v\n", err)
		return 1
	}
	err := run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case certstore.IsUsage(err):
		fmt.Fprintf(stderr, "l7lb truststore: %s: %v (see 'l7lb truststore help')\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "l7lb truststore: %v\n", err)
		return 1
	}
}

// backend is where the commands keep trust stores: a directory (Store)
// or the cluster's Secrets (KubeStore).
type backend interface {
	Create(ctx context.Context, name string, bundle []byte, now time.Time) (TrustStore, []string, error)
	Modify(ctx context.Context, arn string, bundle []byte, now time.Time) (TrustStore, []string, error)
	List(ctx context.Context) ([]TrustStore, error)
	Describe(ctx context.Context, ref string) (TrustStore, error)
	Delete(ctx context.Context, arn string) error
}

// dirBackend is Store as a backend; a directory needs no context.
type dirBackend struct{ *Store }

func (d dirBackend) Create(_ context.Context, name string, bundle []byte, now time.Time) (TrustStore, []string, error) {
	return d.Store.Create(name, bundle, now)
}

func (d dirBackend) Modify(_ context.Context, arn string, bundle []byte, now time.Time) (TrustStore, []string, error) {
	return d.Store.Modify(arn, bundle, now)
}

func (d dirBackend) List(context.Context) ([]TrustStore, error) { return d.Store.List() }

func (d dirBackend) Describe(_ context.Context, ref string) (TrustStore, error) {
	return d.Store.Describe(ref)
}

func (d dirBackend) Delete(_ context.Context, arn string) error { return d.Store.Delete(arn) }

// storeFlags pick the backend: --store DIR, or --kubernetes with its
// namespace and kubeconfig (the same flags as cert import's).
type storeFlags struct {
	dir  string
	kube certstore.KubeFlags
}

func newFlags(name string) (*flag.FlagSet, *storeFlags) {
	fs := flag.NewFlagSet("l7lb truststore "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	sf := &storeFlags{}
	fs.StringVar(&sf.dir, "store", "", "store directory (default $"+certstore.EnvStore+" or the XDG data dir)")
	sf.kube.Register(fs, "trust")
	return fs, sf
}

// open returns the backend the flags name; newKubeClient is replaced in
// tests by a fake clientset.
func (sf *storeFlags) open() (backend, error) {
	if sf.kube.Enabled {
		if sf.dir != "" {
			return nil, certstore.Usagef("give --store or --kubernetes, not both")
		}
		client, err := newKubeClient(&sf.kube)
		if err != nil {
			return nil, err
		}
		return KubeStore{Client: client, Namespace: sf.kube.Namespace}, nil
	}
	dir := sf.dir
	if dir == "" {
		dir = certstore.DefaultDir()
	}
	s, err := Open(dir)
	if err != nil {
		return nil, err
	}
	return dirBackend{s}, nil
}

var newKubeClient = func(k *certstore.KubeFlags) (certstore.KubeClient, error) { return k.Client() }

// readBundle reads --ca-certificates-bundle; problems name the file.
func readBundle(arg string) ([]byte, string, error) {
	if arg == "" {
		return nil, "", certstore.Usagef("--ca-certificates-bundle is required")
	}
	path := certstore.FilePath(arg)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("reading the CA certificates bundle: %w", err)
	}
	return b, path, nil
}

// nameFile puts the bundle's file name into a BundleError.
func nameFile(err error, path string) error {
	var be *BundleError
	if errors.As(err, &be) {
		be.File = path
	}
	return err
}

func cmdCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return writeBundle(ctx, args, stdout, stderr, bundleCmd{
		name: "create", keyFlag: "name", keyUsage: "trust store name (required)",
		bundleUsage: "PEM file with the CA certificates, fileb://PATH or PATH (required)",
		apply: func(ctx context.Context, s backend, key string, bundle []byte, now time.Time) (TrustStore, []string, error) {
			return s.Create(ctx, key, bundle, now)
		},
	})
}

func cmdModify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return writeBundle(ctx, args, stdout, stderr, bundleCmd{
		name: "modify", keyFlag: "trust-store-arn", keyUsage: "ARN of the trust store (required)",
		bundleUsage: "PEM file with the new CA certificates (required)",
		apply: func(ctx context.Context, s backend, key string, bundle []byte, now time.Time) (TrustStore, []string, error) {
			return s.Modify(ctx, key, bundle, now)
		},
	})
}

// bundleCmd is a subcommand that writes a CA bundle into the store under
// one key (create: a name; modify: an ARN).
type bundleCmd struct {
	name, keyFlag, keyUsage, bundleUsage string
	apply                                func(ctx context.Context, s backend, key string, bundle []byte, now time.Time) (TrustStore, []string, error)
}

func writeBundle(ctx context.Context, args []string, stdout, stderr io.Writer, c bundleCmd) error {
	fs, sf := newFlags(c.name)
	key := fs.String(c.keyFlag, "", c.keyUsage)
	bundleF := fs.String("ca-certificates-bundle", "", c.bundleUsage)
	pos, err := certstore.ParseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return certstore.Usagef("unexpected argument %q", pos[0])
	}
	if *key == "" {
		return certstore.Usagef("--%s is required", c.keyFlag)
	}
	bundle, path, err := readBundle(*bundleF)
	if err != nil {
		return err
	}
	s, err := sf.open()
	if err != nil {
		return err
	}
	ts, warns, err := c.apply(ctx, s, *key, bundle, time.Now())
	if err != nil {
		return nameFile(err, path)
	}
	warn(stderr, warns)
	return certstore.WriteJSON(stdout, output{TrustStores: []trustStoreOut{outOf(ts)}})
}

func cmdList(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs, sf := newFlags("list")
	pos, err := certstore.ParseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return certstore.Usagef("unexpected argument %q", pos[0])
	}
	s, err := sf.open()
	if err != nil {
		return err
	}
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	out := output{TrustStores: []trustStoreOut{}}
	for _, ts := range all {
		out.TrustStores = append(out.TrustStores, outOf(ts))
	}
	return certstore.WriteJSON(stdout, out)
}

// cmdDescribe takes --trust-store-arns or --names with one or more values,
// as the AWS CLI spells them (values after the first may follow as words);
// without either it lists all.
func cmdDescribe(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs, sf := newFlags("describe")
	var arns, names listFlag
	fs.Var(&arns, "trust-store-arns", "ARNs to describe")
	fs.Var(&names, "names", "names to describe")
	pos, err := certstore.ParseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(arns) > 0 && len(names) > 0:
		return certstore.Usagef("give --trust-store-arns or --names, not both")
	case len(arns) > 0:
		arns = append(arns, pos...)
	case len(names) > 0:
		names = append(names, pos...)
	case len(pos) > 0:
		return certstore.Usagef("unexpected argument %q", pos[0])
	default:
		return cmdList(ctx, args, stdout, nil)
	}
	s, err := sf.open()
	if err != nil {
		return err
	}
	out := output{TrustStores: []trustStoreOut{}}
	for _, ref := range append(arns, names...) {
		ts, err := s.Describe(ctx, ref)
		if err != nil {
			return err
		}
		out.TrustStores = append(out.TrustStores, outOf(ts))
	}
	return certstore.WriteJSON(stdout, out)
}

// cmdDelete prints nothing on success, like aws elbv2 delete-trust-store.
func cmdDelete(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs, sf := newFlags("delete")
	arn := fs.String("trust-store-arn", "", "ARN of the trust store (required)")
	pos, err := certstore.ParseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return certstore.Usagef("unexpected argument %q", pos[0])
	case *arn == "":
		return certstore.Usagef("--trust-store-arn is required")
	case !strings.HasPrefix(*arn, "arn:"):
		return certstore.Usagef("--trust-store-arn %q: want an ARN (l7lb truststore list shows them)", *arn)
	}
	s, err := sf.open()
	if err != nil {
		return err
	}
	return s.Delete(ctx, *arn)
}

func warn(w io.Writer, warns []string) {
	for _, m := range warns {
		fmt.Fprintf(w, "l7lb truststore: warning: %s\n", m)
	}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// The output types copy the AWS CLI's JSON for elbv2 TrustStore objects,
// field names and order.
type output struct {
	TrustStores []trustStoreOut
}

type trustStoreOut struct {
	Name                   string
	TrustStoreArn          string
	Status                 string
	NumberOfCaCertificates int
	TotalRevokedEntries    int
}

func outOf(ts TrustStore) trustStoreOut {
	return trustStoreOut{Name: ts.Name, TrustStoreArn: ts.ARN, Status: ts.Status(), NumberOfCaCertificates: ts.NumberOfCaCertificates}
}
