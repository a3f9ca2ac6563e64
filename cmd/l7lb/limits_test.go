package main

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"log/slog"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/l7lb/l7lb/internal/demo"
	"github.com/l7lb/l7lb/internal/h2proxy"
	"github.com/l7lb/l7lb/internal/listener"
	"github.com/l7lb/l7lb/internal/runtime"
)

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		str  string
		err  bool
	}{
		{in: "16777216", want: 16 << 20, str: "16MiB"},
		{in: "16MiB", want: 16 << 20, str: "16MiB"},
		{in: "16 mib", want: 16 << 20, str: "16MiB"},
		{in: "64KiB", want: 64 << 10, str: "64KiB"},
		{in: "1GiB", want: 1 << 30, str: "1GiB"},
		{in: "100000", want: 100000, str: "100000"},
		{in: "70000B", want: 70000, str: "70000"},
		{in: "16MB", err: true}, // decimal or binary? refused rather than guessed
		{in: "-1", err: true},
		{in: "1.5MiB", err: true},
		{in: "", err: true},
		{in: "99999999999GiB", err: true}, // overflows
	}
	for _, tc := range tests {
		var b byteSize
		err := b.Set(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("Set(%q) = %d, want an error", tc.in, b)
			}
			continue
		}
		if err != nil || int64(b) != tc.want || b.String() != tc.str {
			t.Errorf("Set(%q): %d %q (%v), want %d %q", tc.in, b, b.String(), err, tc.want, tc.str)
		}
	}
}

func TestAutoMaxConns(t *testing.T) {
	tests := []struct {
		nofile uint64
		want   int
	}{
		{0, 100000}, // unknown or unlimited
		{1024, 512},
		{20000, 10000},
		{65536, 32768},
		{1 << 20, 100000},
		{math.MaxUint32 + 10, 100000},
		{1, 1},
	}
	for _, tc := range tests {
		if got := autoMaxConns(tc.nofile); got != tc.want {
			t.Errorf("autoMaxConns(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}

// TestLimitFlags: the limit flags reach runtime.Options, and bad values are
// refused with the flag named.
func TestLimitFlags(t *testing.T) {
	defaults := runtime.Options{
		HTTP1:        listener.HTTP1Limits{ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 10 * time.Minute, WriteTimeout: 10 * time.Minute, MaxHeaderBytes: 64 << 10},
		ClientLimits: h2proxy.Limits{ConnBuffer: h2proxy.DefaultConnBuffer, WriteStall: h2proxy.DefaultWriteStall},
	}
	with := func(f func(*runtime.Options)) runtime.Options { o := defaults; f(&o); return o }
	tests := []struct {
		name     string
		args     []string
		maxConns int // 0: auto
		want     runtime.Options
		err      string
	}{
		{name: "defaults", want: defaults},
		{name: "every flag", args: []string{"--max-conns", "5000", "--http1-read-header-timeout", "5s", "--http1-read-timeout", "1m",
			"--http1-write-timeout", "2m", "--http1-max-header-bytes", "32KiB", "--client-buffer-bytes", "4MiB", "--client-write-stall-timeout", "10s"},
			maxConns: 5000, want: runtime.Options{
				HTTP1:        listener.HTTP1Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10},
				ClientLimits: h2proxy.Limits{ConnBuffer: 4 << 20, WriteStall: 10 * time.Second},
			}},
		{name: "plain bytes", args: []string{"--client-buffer-bytes", "65536"}, want: with(func(o *runtime.Options) { o.ClientLimits.ConnBuffer = 64 << 10 })},
		{name: "0 turns HTTP/1.1 read and write timeouts off", args: []string{"--http1-read-timeout", "0", "--http1-write-timeout", "0"},
			want: with(func(o *runtime.Options) { o.HTTP1.ReadTimeout, o.HTTP1.WriteTimeout = -1, -1 })},
		{name: "max-conns 0", args: []string{"--max-conns", "0"}, err: `--max-conns "0"`},
		{name: "max-conns word", args: []string{"--max-conns", "lots"}, err: `--max-conns "lots"`},
		{name: "buffer too small", args: []string{"--client-buffer-bytes", "65535"}, err: "--client-buffer-bytes 65535: want 64KiB to 1GiB"},
		{name: "buffer too large", args: []string{"--client-buffer-bytes", "2GiB"}, err: "--client-buffer-bytes 2GiB"},
		{name: "buffer with a decimal unit", args: []string{"--client-buffer-bytes", "16MB"}, err: "-client-buffer-bytes"},
		{name: "stall 0", args: []string{"--client-write-stall-timeout", "0s"}, err: "--client-write-stall-timeout 0s: want a duration above 0"},
		{name: "stall negative", args: []string{"--client-write-stall-timeout", "-1s"}, err: "--client-write-stall-timeout -1s"},
		{name: "header timeout 0", args: []string{"--http1-read-header-timeout", "0"}, err: "--http1-read-header-timeout"},
		{name: "read timeout negative", args: []string{"--http1-read-timeout", "-1s"}, err: "--http1-read-timeout"},
		{name: "write timeout negative", args: []string{"--http1-write-timeout", "-1s"}, err: "--http1-write-timeout"},
		{name: "header cap too small", args: []string{"--http1-max-header-bytes", "1KiB"}, err: "--http1-max-header-bytes 1KiB: want at least 4KiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var lf limitFlags
			lf.register(fs)
			err := fs.Parse(tc.args)
			if err == nil {
				err = lf.validate()
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got runtime.Options
			lf.apply(&got, slog.New(slog.DiscardHandler))
			wantConns := tc.maxConns
			if wantConns == 0 {
				wantConns = autoMaxConns(openFileLimit())
			}
			if got.Conns == nil || got.Conns.Max() != wantConns {
				t.Errorf("connection cap %v, want %d", got.Conns, wantConns)
			}
			if got.HTTP1 != tc.want.HTTP1 || got.ClientLimits != tc.want.ClientLimits {
				t.Errorf("HTTP1 %+v, ClientLimits %+v; want %+v, %+v", got.HTTP1, got.ClientLimits, tc.want.HTTP1, tc.want.ClientLimits)
			}
		})
	}
}

// TestLimitFlagsRefusedAsProcesses: serve and controller stop with a usage
// error (exit 2) naming the flag, before loading anything.
func TestLimitFlagsRefusedAsProcesses(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--client-buffer-bytes", "1KiB"}, "l7lb serve: --client-buffer-bytes 1KiB"},
		{[]string{"serve", "--max-conns", "0"}, `l7lb serve: --max-conns "0"`},
		{[]string{"serve", "--client-buffer-bytes", "16MB"}, "-client-buffer-bytes"},
		{[]string{"controller", "--client-write-stall-timeout", "0s"}, "l7lb controller: --client-write-stall-timeout 0s"},
		{[]string{"controller", "--http1-max-header-bytes", "1KiB"}, "l7lb controller: --http1-max-header-bytes 1KiB"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := l7lb(ctx, tc.args...).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want 2\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestServeMaxConns: serve --max-conns 1 holds one client connection and
// closes the next at once, saying so in its log.
func TestServeMaxConns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster := startCluster(t)
	seed := importSeedCertificate(t, ctx)
	serve := startSeedServe(t, ctx, cluster, seed, "--max-conns", "1", "--admin", "off")
	conf := &tls.Config{RootCAs: seed.ca.Pool(), ServerName: demo.ServerName, NextProtos: []string{"h2"}}
	dialer := &tls.Dialer{Config: conf}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	first, err := dialer.DialContext(dctx, "tcp", serve.addr)
	if err != nil {
		t.Fatalf("first connection: %v\n%s", err, serve.stderr.String())
	}
	defer first.Close()
	if second, err := dialer.DialContext(dctx, "tcp", serve.addr); err == nil {
		second.Close()
		t.Fatalf("a second connection past --max-conns 1 completed its handshake\n%s", serve.stderr.String())
	}
	first.Close()
	serve.terminate(t)
	// After Wait, stderr holds everything serve wrote.
	if log := serve.stderr.String(); !strings.Contains(log, "connection cap reached") || !strings.Contains(log, "max_conns=1") {
		t.Errorf("no log line for the rejection:\n%s", log)
	}
}
