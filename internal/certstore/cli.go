package certstore

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Exit codes of Command.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usageText = `usage: l7lb cert <command> [flags]

The local twin of AWS Certificate Manager. Commands and their ACM names:

  import      (import-certificate)   --certificate F --certificate-chain F --private-key F
                                     [--certificate-arn ARN]  (re-import: replace ARN's certificate)
                                     [--kubernetes [--namespace NS] [--kubeconfig F]]
  list        (list-certificates)
  describe    (describe-certificate) ARN | --certificate-arn ARN
  delete      (delete-certificate)   ARN | --certificate-arn ARN

Every command takes --store DIR (default $L7LB_CERT_STORE, else
$XDG_DATA_HOME/l7lb/certificates, else ~/.local/share/l7lb/certificates).
File arguments accept the AWS CLI's fileb:// and file:// prefixes.
`

// errUsage marks errors that exit with status 2.
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e usageError) Error() string   { return e.msg }
func (e usageError) Is(t error) bool { return t == errUsage }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Usagef makes an error that IsUsage reports (exit status 2).
func Usagef(format string, args ...any) error { return usagef(format, args...) }

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool { return errors.Is(err, errUsage) }

// Command runs `l7lb cert ...`; args are the words after "cert". It prints
// results as the AWS CLI would (JSON, 4-space indent) on stdout, warnings and
// errors on stderr, and returns the exit status: 0 ok, 1 failure, 2 usage.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	var run func(context.Context, []string, io.Writer, io.Writer) error
	switch args[0] {
	case "import", "import-certificate":
		run = cmdImport
	case "list", "list-certificates":
		run = cmdList
	case "describe", "describe-certificate":
		run = cmdDescribe
	case "delete", "delete-certificate":
		run = cmdDelete
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "l7lb cert: unknown command %q\n%s", args[0], usageText)
		return exitUsage
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(stderr, "l7lb cert: %v\n", err)
		return exitError
	}
	err := run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "l7lb cert: %s: %v (see 'l7lb cert help')\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "l7lb cert: %v\n", err)
		return exitError
	}
}

// newFlags returns a flag set whose errors come back to us instead of being
// printed, so every message gets the "l7lb cert: " prefix.
func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("l7lb cert "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error too; help text is
	// printed by parse, for -h only.
	fs.Usage = func() {}
	store := fs.String("store", "", "certificate store directory (default $"+EnvStore+" or the XDG data dir)")
	return fs, store
}

// parse parses flags that may come before or after positional arguments
// (`describe ARN --store D` as well as `describe --store D ARN`), which the
// flag package alone does not allow.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	return ParseFlags(fs, args, stdout)
}

// ParseFlags is parse for the other AWS-twin commands (truststore): flags
// before and after positional arguments; flag.ErrHelp after printing help
// for -h, and errors matching IsUsage for bad flags.
func ParseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stdout, "usage: %s [flags]\n", fs.Name())
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func openStore(dir string) (*Store, error) {
	if dir == "" {
		dir = DefaultDir() // honours $L7LB_CERT_STORE
	}
	return Open(dir)
}

func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, storeDir := newFlags("import")
	kube := kubeFlags(fs)
	certF := fs.String("certificate", "", "PEM file with the server certificate (required)")
	chainF := fs.String("certificate-chain", "", "PEM file with the issuing chain, nearest issuer first")
	keyF := fs.String("private-key", "", "PEM file with the unencrypted private key (required)")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	case *certF == "":
		return usagef("--certificate is required")
	case *keyF == "":
		return usagef("--private-key is required")
	}
	paths := map[Input]string{InputCertificate: filePath(*certF), InputChain: filePath(*chainF), InputKey: filePath(*keyF)}
	data := map[Input][]byte{}
	for in, p := range paths {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", in, err)
		}
		data[in] = b
	}
	var c Certificate
	var warns []string
	if kube.Enabled {
		c, warns, err = kube.importPEMs(ctx, data[InputCertificate], data[InputChain], data[InputKey])
	} else {
		var s *Store
		if s, err = openStore(*storeDir); err != nil {
			return err
		}
		if kube.arn != "" {
			c, warns, err = s.Reimport(kube.arn, data[InputCertificate], data[InputChain], data[InputKey], time.Now())
		} else {
			c, warns, err = s.Import(data[InputCertificate], data[InputChain], data[InputKey], time.Now())
		}
	}
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			ie.File = paths[ie.Input]
		}
		return err
	}
	for _, w := range warns {
		fmt.Fprintf(stderr, "l7lb cert: warning: %s\n", w)
	}
	return writeJSON(stdout, struct {
		CertificateArn string
	}{c.ARN})
}

// filePath strips the AWS CLI's fileb:// and file:// prefixes (both mean
// "read this file"; we read everything as bytes) and expands a leading ~/ as
// the AWS CLI does. A bare path is read as a file too, whereas the AWS CLI
// would take it as literal content: nobody pastes PEM into a flag.
func filePath(arg string) string { return FilePath(arg) }

// FilePath is filePath for the other AWS-twin commands (truststore).
func FilePath(arg string) string {
	p := arg
	for _, prefix := range []string{"fileb://", "file://"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			p = rest
			break
		}
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, rest)
		}
	}
	return p
}

func cmdList(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs, storeDir := newFlags("list")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	s, err := openStore(*storeDir)
	if err != nil {
		return err
	}
	certs, err := s.List()
	if err != nil {
		return err
	}
	now := time.Now()
	out := listOutput{CertificateSummaryList: []certificateSummary{}}
	for _, c := range certs {
		out.CertificateSummaryList = append(out.CertificateSummaryList, certificateSummary{
			CertificateArn:                  c.ARN,
			DomainName:                      c.DomainName,
			SubjectAlternativeNameSummaries: nonNil(c.SubjectAlternativeNames()),
			Status:                          c.Status(now),
			Type:                            "IMPORTED",
			KeyAlgorithm:                    c.KeyAlgorithm,
			NotBefore:                       awsTime(c.NotBefore),
			NotAfter:                        awsTime(c.NotAfter),
			ImportedAt:                      awsTime(c.ImportedAt),
		})
	}
	return writeJSON(stdout, out)
}

// arnArg takes the ARN from --certificate-arn (the AWS spelling) or from the
// single positional argument.
func arnArg(name string, args []string, stdout io.Writer) (arn, storeDir string, err error) {
	fs, store := newFlags(name)
	flagARN := fs.String("certificate-arn", "", "ARN of the certificate")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return "", "", err
	}
	switch {
	case len(pos) > 1:
		return "", "", usagef("unexpected argument %q", pos[1])
	case len(pos) == 1 && *flagARN != "" && pos[0] != *flagARN:
		return "", "", usagef("two different ARNs given")
	case len(pos) == 1:
		return pos[0], *store, nil
	case *flagARN != "":
		return *flagARN, *store, nil
	}
	return "", "", usagef("a certificate ARN is required")
}

func cmdDescribe(_ context.Context, args []string, stdout, _ io.Writer) error {
	arn, storeDir, err := arnArg("describe", args, stdout)
	if err != nil {
		return err
	}
	s, err := openStore(storeDir)
	if err != nil {
		return err
	}
	c, err := s.Describe(arn)
	if err != nil {
		return err
	}
	return writeJSON(stdout, describeOutput{Certificate: certificateDetail{
		CertificateArn:          c.ARN,
		DomainName:              c.DomainName,
		SubjectAlternativeNames: nonNil(c.SubjectAlternativeNames()),
		Serial:                  c.Serial,
		Subject:                 c.Subject,
		Issuer:                  c.Issuer,
		ImportedAt:              awsTime(c.ImportedAt),
		Status:                  c.Status(time.Now()),
		NotBefore:               awsTime(c.NotBefore),
		NotAfter:                awsTime(c.NotAfter),
		KeyAlgorithm:            c.KeyAlgorithm,
		SignatureAlgorithm:      c.SignatureAlgorithm,
		Type:                    "IMPORTED",
	}})
}

// cmdDelete prints nothing on success, like `aws acm delete-certificate`.
func cmdDelete(_ context.Context, args []string, stdout, _ io.Writer) error {
	arn, storeDir, err := arnArg("delete", args, stdout)
	if err != nil {
		return err
	}
	s, err := openStore(storeDir)
	if err != nil {
		return err
	}
	return s.Delete(arn)
}

// The output types copy the field names and order of the AWS CLI's JSON
// (ACM API shapes), so scripts written against `aws acm` keep working.
type listOutput struct {
	CertificateSummaryList []certificateSummary
}

type certificateSummary struct {
	CertificateArn                  string
	DomainName                      string
	SubjectAlternativeNameSummaries []string
	Status                          string
	Type                            string
	KeyAlgorithm                    string
	NotBefore                       string
	NotAfter                        string
	ImportedAt                      string
}

type describeOutput struct {
	Certificate certificateDetail
}

type certificateDetail struct {
	CertificateArn          string
	DomainName              string
	SubjectAlternativeNames []string
	Serial                  string
	Subject                 string
	Issuer                  string
	ImportedAt              string
	Status                  string
	NotBefore               string
	NotAfter                string
	KeyAlgorithm            string
	SignatureAlgorithm      string
	Type                    string
}

// awsTime formats t as the AWS CLI prints timestamps: ISO 8601 with a
// numeric offset, "2025-01-02T03:04:05+00:00".
func awsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05-07:00") }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeJSON prints v as the AWS CLI does: 4-space indent, no HTML escaping.
func writeJSON(w io.Writer, v any) error { return WriteJSON(w, v) }

// WriteJSON is writeJSON for the other AWS-twin commands (truststore).
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}
