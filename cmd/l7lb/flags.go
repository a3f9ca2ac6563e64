package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/l7lb/l7lb/internal/h2proxy"
	"github.com/l7lb/l7lb/internal/listener"
	"github.com/l7lb/l7lb/internal/runtime"
)

// stringList is a repeatable flag; commas also separate values when split
// is set.
type stringList struct {
	values []string
	split  bool
}

func (s *stringList) String() string { return strings.Join(s.values, ",") }

func (s *stringList) Set(v string) error {
	if !s.split {
		s.values = append(s.values, v)
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			s.values = append(s.values, p)
		}
	}
	return nil
}

// logFlags are shared by the long-running commands.
type logFlags struct {
	level  string
	format string
}

func (lf *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lf.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", lf.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch lf.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", lf.format)
	}
}

// printUsageError reports a usage error (exit 2) as "l7lb COMMAND: err".
func printUsageError(stderr io.Writer, fs *flag.FlagSet, err error) {
	fmt.Fprintln(stderr, fs.Name()+":", err)
}

// byteSize is a flag of bytes: a plain number or one with a binary unit,
// e.g. 16777216, 16MiB, 64KiB.
type byteSize int64

var byteUnits = []struct {
	suffix, name string
	mult         int64
}{{"gib", "GiB", 1 << 30}, {"mib", "MiB", 1 << 20}, {"kib", "KiB", 1 << 10}, {"b", "", 1}}

func (b *byteSize) Set(v string) error {
	s := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a number of bytes, optionally with a unit: 16777216, 16MiB, 64KiB, 1GiB")
	}
	*b = byteSize(n * mult)
	return nil
}

func (b byteSize) String() string {
	for _, u := range byteUnits {
		if b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.name
		}
	}
	return "0"
}

// limitFlags bound what clients may take of one l7lb process; serve and
// controller share them. docs/limits.md explains each one and its default.
type limitFlags struct {
	maxConns          string
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	maxHeaderBytes    byteSize
	clientBuffer      byteSize
	writeStall        time.Duration
}

// Bounds of the limit flags.
const (
	maxConnsCeiling   = 100000
	minMaxHeaderBytes = 4 << 10
	minClientBuffer   = 64 << 10
	maxClientBuffer   = 1 << 30
)

func (lf *limitFlags) register(fs *flag.FlagSet) {
	lf.maxHeaderBytes = listener.DefaultMaxHeaderBytes
	lf.clientBuffer = h2proxy.DefaultConnBuffer
	fs.StringVar(&lf.maxConns, "max-conns", "auto", "client connections open at once, all listeners together; past it new connections are closed at accept: auto is half the open-file limit (RLIMIT_NOFILE), at most 100000")
	fs.DurationVar(&lf.readHeaderTimeout, "http1-read-header-timeout", listener.DefaultHTTP1ReadHeaderTimeout, "HTTP/1.1: time a client has to send a request's line and headers (slowloris)")
	fs.DurationVar(&lf.readTimeout, "http1-read-timeout", listener.DefaultHTTP1ReadTimeout, "HTTP/1.1: time a client has to send a whole request, body included; 0: no limit")
	fs.DurationVar(&lf.writeTimeout, "http1-write-timeout", listener.DefaultHTTP1WriteTimeout, "HTTP/1.1: time from the end of a request's headers to the end of its response, body upload and target's work included; 0: no limit")
	fs.Var(&lf.maxHeaderBytes, "http1-max-header-bytes", "HTTP/1.1: largest request line and headers; larger ones get 431 (HTTP/2 advertises 64KiB)")
	fs.Var(&lf.clientBuffer, "client-buffer-bytes", "HTTP/2: response bytes l7lb holds at most for one client connection (e.g. 16MiB, or plain bytes); at least 64KiB")
	fs.DurationVar(&lf.writeStall, "client-write-stall-timeout", h2proxy.DefaultWriteStall, "HTTP/2: close a client connection that has responses waiting and takes none of them for this long")
}

// validate checks the limit flags; errors name the flag.
func (lf *limitFlags) validate() error {
	if lf.maxConns != "auto" {
		if n, err := strconv.Atoi(lf.maxConns); err != nil || n < 1 {
			return fmt.Errorf("--max-conns %q: want auto or a number of connections from 1", lf.maxConns)
		}
	}
	switch {
	case lf.readHeaderTimeout <= 0:
		return fmt.Errorf("--http1-read-header-timeout %v: want a duration above 0, e.g. 30s", lf.readHeaderTimeout)
	case lf.readTimeout < 0:
		return fmt.Errorf("--http1-read-timeout %v: want a duration, or 0 for no limit", lf.readTimeout)
	case lf.writeTimeout < 0:
		return fmt.Errorf("--http1-write-timeout %v: want a duration, or 0 for no limit", lf.writeTimeout)
	case lf.maxHeaderBytes < minMaxHeaderBytes:
		return fmt.Errorf("--http1-max-header-bytes %v: want at least %v", lf.maxHeaderBytes, byteSize(minMaxHeaderBytes))
	case lf.clientBuffer < minClientBuffer || lf.clientBuffer > maxClientBuffer:
		return fmt.Errorf("--client-buffer-bytes %v: want %v to %v (the HTTP/2 window a client connection's streams get from targets)", lf.clientBuffer, byteSize(minClientBuffer), byteSize(maxClientBuffer))
	case lf.writeStall <= 0:
		return fmt.Errorf("--client-write-stall-timeout %v: want a duration above 0, e.g. 30s", lf.writeStall)
	}
	return nil
}

// apply puts the validated limits into opts and says on log what the
// connection cap is.
func (lf *limitFlags) apply(opts *runtime.Options, log *slog.Logger) {
	nofile := openFileLimit()
	maxConns, err := strconv.Atoi(lf.maxConns)
	if err != nil { // auto
		maxConns = autoMaxConns(nofile)
		log.Info("client connection cap (--max-conns auto)", "max_conns", maxConns, "open_file_limit", nofile)
	} else if nofile > 0 && uint64(maxConns) > nofile {
		log.Warn("--max-conns is above the open-file limit (RLIMIT_NOFILE): accept will run out of file descriptors, and back off, before the cap is reached",
			"max_conns", maxConns, "open_file_limit", nofile)
	}
	none := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1 // listener.HTTP1Limits: negative means no limit
		}
		return d
	}
	opts.Conns = listener.NewConnLimit(maxConns, log)
	opts.HTTP1 = listener.HTTP1Limits{
		ReadHeaderTimeout: lf.readHeaderTimeout,
		ReadTimeout:       none(lf.readTimeout),
		WriteTimeout:      none(lf.writeTimeout),
		MaxHeaderBytes:    int(lf.maxHeaderBytes),
	}
	opts.ClientLimits = h2proxy.Limits{ConnBuffer: int64(lf.clientBuffer), WriteStall: lf.writeStall}
}

// openFileLimit is the process's RLIMIT_NOFILE (Go raises the soft limit
// to the hard one at start-up); 0 when unknown or unlimited.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == math.MaxUint64 {
		return 0
	}
	return rl.Cur
}

// autoMaxConns is --max-conns auto: half the open-file limit, since an
// HTTP/1.1 client with a request in flight also holds a connection to its
// target (the other half covers those, listeners, target pools and
// files), and at most maxConnsCeiling.
func autoMaxConns(nofile uint64) int {
	if nofile == 0 {
		return maxConnsCeiling
	}
	return int(max(1, min(nofile/2, maxConnsCeiling)))
}
