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
`

// Command runs `l7lb truststore ...`; args are the words after
// "truststore". Output is the AWS CLI's JSON; the exit status is 0 ok,
// 1 failure, 2 usage.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	var run func([]string, io.Writer, io.Writer) error
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
	err := run(args[1:], stdout, stderr)
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

func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("l7lb truststore "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	store := fs.String("store", "", "store directory (default $"+certstore.EnvStore+" or the XDG data dir)")
	return fs, store
}

func openStore(dir string) (*Store, error) {
	if dir == "" {
		dir = certstore.DefaultDir()
	}
	return Open(dir)
}

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

func cmdCreate(args []string, stdout, stderr io.Writer) error {
	return writeBundle(args, stdout, stderr, bundleCmd{
		name: "create", keyFlag: "name", keyUsage: "trust store name (required)",
		bundleUsage: "PEM file with the CA certificates, fileb://PATH or PATH (required)",
		apply: func(s *Store, key string, bundle []byte, now time.Time) (TrustStore, []string, error) {
			return s.Create(key, bundle, now)
		},
	})
}

func cmdModify(args []string, stdout, stderr io.Writer) error {
	return writeBundle(args, stdout, stderr, bundleCmd{
		name: "modify", keyFlag: "trust-store-arn", keyUsage: "ARN of the trust store (required)",
		bundleUsage: "PEM file with the new CA certificates (required)",
		apply: func(s *Store, key string, bundle []byte, now time.Time) (TrustStore, []string, error) {
			return s.Modify(key, bundle, now)
		},
	})
}

// bundleCmd is a subcommand that writes a CA bundle into the store under
// one key (create: a name; modify: an ARN).
type bundleCmd struct {
	name, keyFlag, keyUsage, bundleUsage string
	apply                                func(s *Store, key string, bundle []byte, now time.Time) (TrustStore, []string, error)
}

func writeBundle(args []string, stdout, stderr io.Writer, c bundleCmd) error {
	fs, storeDir := newFlags(c.name)
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
	s, err := openStore(*storeDir)
	if err != nil {
		return err
	}
	ts, warns, err := c.apply(s, *key, bundle, time.Now())
	if err != nil {
		return nameFile(err, path)
	}
	warn(stderr, warns)
	return certstore.WriteJSON(stdout, output{TrustStores: []trustStoreOut{outOf(ts)}})
}

func cmdList(args []string, stdout, _ io.Writer) error {
	fs, storeDir := newFlags("list")
	pos, err := certstore.ParseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return certstore.Usagef("unexpected argument %q", pos[0])
	}
	s, err := openStore(*storeDir)
	if err != nil {
		return err
	}
	all, err := s.List()
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
func cmdDescribe(args []string, stdout, _ io.Writer) error {
	fs, storeDir := newFlags("describe")
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
		return cmdList(args, stdout, nil)
	}
	s, err := openStore(*storeDir)
	if err != nil {
		return err
	}
	out := output{TrustStores: []trustStoreOut{}}
	for _, ref := range append(arns, names...) {
		ts, err := s.Describe(ref)
		if err != nil {
			return err
		}
		out.TrustStores = append(out.TrustStores, outOf(ts))
	}
	return certstore.WriteJSON(stdout, out)
}

// cmdDelete prints nothing on success, like aws elbv2 delete-trust-store.
func cmdDelete(args []string, stdout, _ io.Writer) error {
	fs, storeDir := newFlags("delete")
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
	s, err := openStore(*storeDir)
	if err != nil {
		return err
	}
	return s.Delete(*arn)
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
