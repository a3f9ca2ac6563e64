package chaos

import (
	"bufio"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	"github.com/l7lb/l7lb/internal/h2proxy"
	"github.com/l7lb/l7lb/internal/runtime"
)

type clientFlow = h2proxy.ConnFlow

// violation is one invariant that did not hold, with the numbers.
type violation struct {
	kind   string
	detail string
}

func (v violation) String() string { return v.kind + ": " + v.detail }

// Bounds.
const (
	// goroutineMargin: goroutines a settled process may have above the
	// baseline (grpc-go's and the health checks' come and go).
	goroutineMargin = 40
	// rssGrowthLimit: how far the settled resident set (after a GC that
	// returns freed memory to the OS) may exceed the baseline's.
	rssGrowthLimit = 96 << 20
	// rssPeakLimit: how far the resident set may exceed the baseline's at
	// any time during a round. l7lb holds at most ConnBuffer (16 MiB) of
	// responses per client connection; a round has a handful of
	// misbehaving connections holding that much, plus the replies the
	// test's own targets build.
	rssPeakLimit = 320 << 20
	// connBufferSlack: what a client connection's queue may exceed
	// Limits.ConnBuffer by (frame headers, control frames, one frame).
	connBufferSlack = 1 << 20
	// respFloorPerStream: the "small floor per stream" RespGranted may
	// exceed ConnBuffer by.
	respFloorPerStream = 64 << 10
)

func (e *env) clientFlow(local string) *clientFlow {
	for _, c := range e.rt.Flow().Clients {
		if c.Client == local {
			c := c
			return &c
		}
	}
	return nil
}

// flowViolations checks the settled data path: what runtime.Flow says
// and what the raw targets saw themselves.
func (e *env) flowViolations(f runtime.Flow) []violation {
	var out []violation
	add := func(kind, format string, args ...any) {
		out = append(out, violation{kind, fmt.Sprintf(format, args...)})
	}
	for _, c := range f.Clients {
		if !e.isGood(c.Client) {
			add("client-conn-left", "connection from %s still open in l7lb after its client closed it (streams=%d queued=%d)", c.Client, c.Streams, c.Queued)
		}
		if c.Streams != 0 {
			add("client-streams-left", "client connection %s: %d streams left", c.Client, c.Streams)
			continue
		}
		if c.RecvWindow != c.RecvWindowInitial {
			add("client-recv-window", "idle client connection %s: RecvWindow %d != RecvWindowInitial %d (%+d)", c.Client, c.RecvWindow, c.RecvWindowInitial, c.RecvWindow-c.RecvWindowInitial)
		}
		if c.RespGranted != 0 {
			add("client-resp-granted", "idle client connection %s: RespGranted %d, want 0", c.Client, c.RespGranted)
		}
		if c.Queued != 0 {
			add("client-queued", "idle client connection %s: %d bytes still queued", c.Client, c.Queued)
		}
	}
	for _, t := range f.Targets {
		name := e.targetName(t.Addr) + " in " + t.Group
		if t.InFlight != 0 {
			add("target-inflight", "%s: InFlight %d", name, t.InFlight)
		}
		for i, c := range t.Conns {
			cn := fmt.Sprintf("%s conn#%d", name, i)
			if c.Streams != 0 {
				add("target-streams-left", "%s: %d streams left (usable=%v queued=%d)", cn, c.Streams, c.Usable, c.Queued)
				continue
			}
			if c.RecvWindow != c.RecvWindowInitial {
				add("target-recv-window", "%s idle: RecvWindow %d != RecvWindowInitial %d (%+d)", cn, c.RecvWindow, c.RecvWindowInitial, c.RecvWindow-c.RecvWindowInitial)
			}
			if c.SendWindow <= 0 {
				add("target-send-window", "%s idle: SendWindow %d, want > 0", cn, c.SendWindow)
			}
			if c.Queued != 0 {
				add("target-queued", "%s idle: %d bytes still queued", cn, c.Queued)
			}
		}
	}
	for _, r := range e.allRaws() {
		name := e.targetName(r.addr)
		for _, v := range r.view() {
			if v.closedConn {
				continue
			}
			if len(v.streams) > 0 {
				ids := v.streams
				sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
				if len(ids) > 8 {
					ids = ids[:8]
				}
				add("raw-target-streams-left", "%s, connection from %s: l7lb left %d streams open (neither finished nor reset), e.g. %v", name, v.remote, len(v.streams), ids)
				continue
			}
			// An idle connection must let the target send at least 3/4
			// of the window l7lb granted it (16 MiB): l7lb gives credit
			// back once a quarter of the window is owed, so below that it
			// holds credit it can never return (bytes it took and
			// dropped). This is the target's own count, independent of
			// l7lb's bookkeeping.
			if v.dataPath && v.gotWinUpd && v.window < v.peak-v.peak/4 {
				add("raw-target-window", "%s, idle connection from %s: l7lb lets the target send only %d of the %s it granted (%s held back; it may owe less than a quarter), %s sent on it in all", name, v.remote, v.window, sizeText(int(v.peak)), mib(v.peak-v.window), mib(v.sent))
			}
		}
	}
	return out
}

func (e *env) targetName(addr string) string {
	if addr == e.rawTarget().addr {
		return "raw target " + addr
	}
	for _, r := range e.allRaws() {
		if r.addr == addr {
			return "old raw target " + addr
		}
	}
	for i, a := range e.cluster.Addrs() {
		if a == addr {
			return fmt.Sprintf("replica-%d %s", i, addr)
		}
	}
	return addr
}

// flowSummary is a one-line picture of the data path, for messages.
func (e *env) flowSummary(f runtime.Flow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d client conns", len(f.Clients))
	for _, t := range f.Targets {
		streams := 0
		var win []string
		for _, c := range t.Conns {
			streams += c.Streams
			win = append(win, sizeText(int(c.RecvWindow))+"/"+strconv.FormatInt(c.SendWindow, 10))
		}
		group := t.Group
		if i := strings.LastIndex(group, "/"); i >= 0 {
			group = group[i+1:]
		}
		fmt.Fprintf(&b, "; %s@%s inflight=%d conns=%d streams=%d recv/send=%v", e.targetName(t.Addr), group, t.InFlight, len(t.Conns), streams, win)
	}
	return b.String()
}

// rssBytes reads VmRSS from /proc/self/status.
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line)
			if len(fields) >= 2 {
				kb, _ := strconv.ParseInt(fields[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// settledRSS collects garbage and returns freed memory to the OS first,
// so that what is left is what is still referenced.
func settledRSS() int64 {
	goruntime.GC()
	debug.FreeOSMemory()
	return rssBytes()
}

func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }
