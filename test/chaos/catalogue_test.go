package chaos

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// entry is one kind of misbehaviour in the catalogue. draw picks its
// parameters for a round (from the round's seeded generator) and
// returns the actor that carries it out.
type entry struct {
	name   string
	target bool // a target-side fault (at most one per round)
	doc    string
	draw   func(rng *rand.Rand) *actor
}

// actor is one drawn misbehaviour: it runs until its round's context
// ends (or its bounded work is done) and cleans up after itself (every
// connection it opened is closed when it returns; the round closes
// leftovers too).
type actor struct {
	name   string
	params string
	run    func(a *act)
}

func (a *actor) String() string { return a.name + "(" + a.params + ")" }

var catalogue = []entry{
	{name: "cancel", doc: "RST_STREAM(CANCEL) at a random point: before the body, after it, after the response headers, or after some response bytes", draw: drawCancel},
	{name: "deadline", doc: "grpc-timeout shorter than the reply (held or paced replies), reading normally or granting no window", draw: drawDeadline},
	{name: "win0", doc: "SETTINGS_INITIAL_WINDOW_SIZE 0, then large replies; never grants window; resets the streams or just closes", draw: drawWin0},
	{name: "noread", doc: "huge windows (2^31-1 per stream and connection), large replies, never reads the socket", draw: drawNoRead},
	{name: "slowread", doc: "reads the socket slowly (a pause per frame), large replies", draw: drawSlowRead},
	{name: "rstupload", doc: "uploads that are reset halfway (RST_STREAM in the middle of the request), one after another on one connection", draw: drawRSTUpload},
	{name: "halfmsg", doc: "half a gRPC message (the 5-byte prefix announces more than is sent), then stalls", draw: drawHalfMsg},
	{name: "maxstreams", doc: "opens SETTINGS_MAX_CONCURRENT_STREAMS streams (plus a few over) on one connection, each held a while by the target", draw: drawMaxStreams},
	{name: "manyconns", doc: "many connections at once (at most 200): idle, one call, half a frame, or TLS without the HTTP/2 preface", draw: drawManyConns},
	{name: "t-goaway", target: true, doc: "the raw target sends GOAWAY after a few streams on every connection (graceful, or abrupt: INTERNAL_ERROR and close)", draw: drawGoAway},
	{name: "t-kill", target: true, doc: "the raw target is killed (listener and connections closed) and comes back", draw: drawKill},
	{name: "t-freeze", target: true, doc: "the raw target stops reading and answering for a while, then resumes", draw: drawFreeze},
	{name: "t-tinywin", target: true, doc: "the raw target's stream windows for requests turn tiny (mid-connection SETTINGS, so open streams go negative) and new connections keep a 64 KiB connection window", draw: drawTinyWin},
	{name: "t-mcs1", target: true, doc: "the raw target allows 1 concurrent stream per connection (mid-connection SETTINGS), refusing more", draw: drawMCS1},
}

func findEntry(name string) *entry {
	for i := range catalogue {
		if catalogue[i].name == name {
			return &catalogue[i]
		}
	}
	return nil
}

// act is an actor's handle on its round.
type act struct {
	r    *round
	ctx  context.Context
	rng  *rand.Rand
	name string

	mu    sync.Mutex
	conns []*h2conn
	raws  []net.Conn
	notes []string
}

func (a *act) notef(format string, args ...any) {
	a.mu.Lock()
	a.notes = append(a.notes, fmt.Sprintf(format, args...))
	a.mu.Unlock()
}

func (a *act) violate(kind, format string, args ...any) {
	a.r.violate(kind, a.name+": "+fmt.Sprintf(format, args...))
}

// dial opens a raw client connection to l7lb, closed when the actor
// returns at the latest.
func (a *act) dial(o h2opts) (*h2conn, error) {
	o.deadline = a.r.end.Add(10 * time.Second)
	h, err := dialH2(a.ctx, a.r.e.addr, a.r.e.pool, o)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.conns = append(a.conns, h)
	a.mu.Unlock()
	return h, nil
}

func (a *act) closeAll() {
	a.mu.Lock()
	conns, raws := a.conns, a.raws
	a.conns, a.raws = nil, nil
	a.mu.Unlock()
	for _, h := range conns {
		h.close()
	}
	for _, c := range raws {
		c.Close()
	}
}

// sleep waits d or until the round ends; false if the round ended.
func (a *act) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.ctx.Done():
		return false
	}
}

func (a *act) done() bool { return a.ctx.Err() != nil }

// idleCheck waits (at most 1.5 s) until l7lb tracks no stream on h's
// connection any more, then checks what an idle connection must look
// like: l7lb's receive window back at its initial value (it gave back
// credit for every request byte it took, forwarded or thrown away), no
// response window granted for it, and, from the client's side, the
// connection window l7lb granted the client at least 3/4 of its 16 MiB
// (l7lb returns connection credit once a quarter of the window is owed,
// so less means bytes it will never credit).
func (a *act) idleCheck(h *h2conn) {
	var cf *clientFlow
	deadline := time.Now().Add(1500 * time.Millisecond)
	for {
		cf = a.r.e.clientFlow(h.local)
		if cf == nil || cf.Streams == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cf == nil {
		a.notef("idle check: l7lb no longer lists the connection")
		return
	}
	if cf.Streams != 0 {
		a.violate("client-streams-stuck", "l7lb still tracks %d streams on the client connection %s 1.5s after the client reset or finished all of them", cf.Streams, h.local)
		return
	}
	if cf.RecvWindow != cf.RecvWindowInitial {
		a.violate("client-recv-window", "idle client connection %s: RecvWindow %d != RecvWindowInitial %d (%+d bytes)", h.local, cf.RecvWindow, cf.RecvWindowInitial, cf.RecvWindow-cf.RecvWindowInitial)
	}
	if cf.RespGranted != 0 {
		a.violate("client-resp-granted", "idle client connection %s: RespGranted %d, want 0", h.local, cf.RespGranted)
	}
	if w := h.sendWindow(); w < clientConnWindow*3/4 {
		a.violate("client-window-at-client", "idle client connection %s: l7lb lets the client send only %d bytes (window %d; it keeps %d bytes of credit, more than the quarter it may owe)", h.local, w, clientConnWindow, clientConnWindow-w)
	}
}

// clientConnWindow is the connection window l7lb grants clients.
const clientConnWindow = 16 << 20

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

func between(rng *rand.Rand, lo, hi int) int { return lo + rng.IntN(hi-lo+1) }

func durBetween(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

func sizeText(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// unaryBody is a gRPC-framed BytesValue of n bytes.
func unaryBody(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte('A' + i%26)
	}
	return grpcFrame(bytesValue(p))
}

// ---- cancel ----

func drawCancel(rng *rand.Rand) *actor {
	conns := between(rng, 1, 2)
	streams := between(rng, 20, 120)
	return &actor{name: "cancel", params: fmt.Sprintf("conns=%d,streams=%d", conns, streams), run: func(a *act) {
		var wg sync.WaitGroup
		var counts [4]atomic.Int64
		for c := 0; c < conns; c++ {
			rng := rand.New(rand.NewPCG(a.rng.Uint64(), uint64(c)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := a.dial(h2opts{})
				if err != nil {
					a.notef("dial: %v", err)
					return
				}
				for i := 0; i < streams && !a.done(); i++ {
					var r request
					var body []byte
					if rng.IntN(2) == 0 {
						r = streamReplies(between(rng, 1, 8), pick(rng, 16<<10, 256<<10, 1<<20))
						body = unaryBody(0)
					} else {
						r = unaryReq(hold(durBetween(rng, 0, 300*time.Millisecond)))
						body = unaryBody(between(rng, 16, 64<<10))
					}
					st, err := h.open(r)
					if err != nil {
						a.notef("open: %v", err)
						return
					}
					point := rng.IntN(4)
					counts[point].Add(1)
					switch point {
					case 0: // before the body
					case 1: // after the body
						if _, err := h.send(a.ctx, st, body, true, time.Second); err != nil {
							break
						}
						a.sleep(durBetween(rng, 0, 50*time.Millisecond))
					case 2: // after the response headers
						h.send(a.ctx, st, body, true, time.Second)
						h.waitFor(a.ctx, time.Second, func() bool { return st.gotHdr || st.ended })
					case 3: // after some response bytes
						h.send(a.ctx, st, body, true, time.Second)
						k := int64(between(rng, 1, 512<<10))
						h.waitFor(a.ctx, time.Second, func() bool { return st.recv >= k || st.ended })
					}
					if err := h.rst(st, http2.ErrCodeCancel); err != nil {
						a.notef("rst: %v", err)
						return
					}
					a.sleep(durBetween(rng, 2*time.Millisecond, 30*time.Millisecond))
				}
				if !a.done() {
					a.idleCheck(h)
				}
			}()
		}
		wg.Wait()
		a.notef("reset before body %d, after body %d, after headers %d, after bytes %d", counts[0].Load(), counts[1].Load(), counts[2].Load(), counts[3].Load())
	}}
}

// ---- deadline ----

func drawDeadline(rng *rand.Rand) *actor {
	streams := between(rng, 10, 60)
	timeout := durBetween(rng, 10*time.Millisecond, 150*time.Millisecond)
	win0 := rng.IntN(3) == 0
	return &actor{name: "deadline", params: fmt.Sprintf("streams=%d,timeout=%v,clientWindow0=%v", streams, timeout.Round(time.Millisecond), win0), run: func(a *act) {
		o := h2opts{}
		if win0 {
			o.initWin, o.credit = u32(0), creditNever
		}
		h, err := a.dial(o)
		if err != nil {
			a.notef("dial: %v", err)
			return
		}
		var sts []*h2stream
		var lastOpen time.Time
		for i := 0; i < streams && !a.done(); i++ {
			var r request
			body := unaryBody(0)
			if a.rng.IntN(2) == 0 {
				r = unaryReq(hold(timeout + durBetween(a.rng, 50*time.Millisecond, 300*time.Millisecond)))
				body = unaryBody(between(a.rng, 16, 4096))
			} else {
				r = streamReplies(8, 128<<10, [2]string{"x-reply-interval-ms", "20"})
			}
			r.timeout = timeout
			st, err := h.open(r)
			if err != nil {
				a.notef("open: %v", err)
				return
			}
			h.send(a.ctx, st, body, true, time.Second)
			sts = append(sts, st)
			lastOpen = time.Now()
			a.sleep(durBetween(a.rng, 5*time.Millisecond, 40*time.Millisecond))
		}
		// Every stream must end by its deadline (plus slack): l7lb
		// enforces grpc-timeout itself.
		wait := time.Until(lastOpen.Add(timeout + 2*time.Second))
		h.waitFor(context.Background(), max(wait, 0), func() bool {
			for _, st := range sts {
				if !st.ended {
					return false
				}
			}
			return true
		})
		codes := map[string]int{}
		open := 0
		for _, st := range sts {
			s := h.snapshot(st)
			switch {
			case !s.ended:
				open++
			case s.rst:
				codes["rst:"+s.rstCode.String()]++
			default:
				codes["grpc-status:"+s.grpc]++
			}
		}
		if open > 0 && h.alive() {
			a.violate("deadline-not-enforced", "%d of %d streams with grpc-timeout %v had not ended 2s after their deadline", open, len(sts), timeout)
		}
		a.notef("endings %v", codes)
		if h.alive() {
			a.idleCheck(h)
		}
	}}
}

// ---- win0 ----

func drawWin0(rng *rand.Rand) *actor {
	streams := between(rng, 4, 24)
	count := between(rng, 2, 8)
	holdFor := durBetween(rng, 200*time.Millisecond, 1500*time.Millisecond)
	ending := pick(rng, "rst", "close")
	return &actor{name: "win0", params: fmt.Sprintf("streams=%d,reply=%dx1MiB,hold=%v,then=%s", streams, count, holdFor.Round(time.Millisecond), ending), run: func(a *act) {
		h, err := a.dial(h2opts{initWin: u32(0), credit: creditNever})
		if err != nil {
			a.notef("dial: %v", err)
			return
		}
		var sts []*h2stream
		for i := 0; i < streams && !a.done(); i++ {
			st, err := h.open(streamReplies(count, 1<<20))
			if err != nil {
				a.notef("open: %v", err)
				return
			}
			h.send(a.ctx, st, unaryBody(0), true, time.Second)
			sts = append(sts, st)
		}
		a.sleep(holdFor)
		hdrs := 0
		for _, st := range sts {
			if h.snapshot(st).gotHdr {
				hdrs++
			}
		}
		a.notef("%d/%d streams got response headers", hdrs, len(sts))
		if ending == "rst" {
			for _, st := range sts {
				h.rst(st, http2.ErrCodeCancel)
			}
			a.idleCheck(h)
		}
		<-a.ctx.Done()
	}}
}

// ---- noread ----

func drawNoRead(rng *rand.Rand) *actor {
	streams := between(rng, 2, 6)
	count := between(rng, 8, 24)
	return &actor{name: "noread", params: fmt.Sprintf("streams=%d,reply=%dx1MiB", streams, count), run: func(a *act) {
		h, err := a.dial(h2opts{initWin: u32(1<<31 - 1), connWin: 1<<31 - 1 - 65535, noRead: true})
		if err != nil {
			a.notef("dial: %v", err)
			return
		}
		for i := 0; i < streams; i++ {
			st, err := h.open(streamReplies(count, 1<<20))
			if err != nil {
				a.notef("open: %v", err)
				return
			}
			// The SETTINGS ack is never sent either: l7lb may not even
			// know the huge window yet, which is allowed.
			h.wmu.Lock()
			h.fr.WriteData(st.id, true, unaryBody(0))
			h.wmu.Unlock()
		}
		<-a.ctx.Done()
	}}
}

// ---- slowread ----

func drawSlowRead(rng *rand.Rand) *actor {
	streams := between(rng, 2, 8)
	pause := durBetween(rng, 2*time.Millisecond, 10*time.Millisecond)
	win := pick(rng, uint32(65535), uint32(256<<10))
	return &actor{name: "slowread", params: fmt.Sprintf("streams=%d,reply=4x1MiB,pausePerFrame=%v,window=%s", streams, pause.Round(time.Millisecond), sizeText(int(win))), run: func(a *act) {
		h, err := a.dial(h2opts{initWin: u32(win), readPause: pause})
		if err != nil {
			a.notef("dial: %v", err)
			return
		}
		var sts []*h2stream
		for i := 0; i < streams; i++ {
			st, err := h.open(streamReplies(4, 1<<20))
			if err != nil {
				a.notef("open: %v", err)
				return
			}
			h.send(a.ctx, st, unaryBody(0), true, time.Second)
			sts = append(sts, st)
		}
		<-a.ctx.Done()
		var got int64
		ended := 0
		for _, st := range sts {
			s := h.snapshot(st)
			got += s.recv
			if s.ended {
				ended++
			}
		}
		a.notef("read %s, %d/%d streams complete", sizeText(int(got)), ended, len(sts))
	}}
}

// ---- rstupload ----

func drawRSTUpload(rng *rand.Rand) *actor {
	uploads := between(rng, 8, 40)
	return &actor{name: "rstupload", params: fmt.Sprintf("uploads=%d,size=64KiB..2MiB", uploads), run: func(a *act) {
		h, err := a.dial(h2opts{})
		if err != nil {
			a.notef("dial: %v", err)
			return
		}
		var sent, reset int64
		for i := 0; i < uploads && !a.done(); i++ {
			st, err := h.open(request{path: "/l7lb.test.Echo/ClientStream"})
			if err != nil {
				a.notef("open: %v", err)
				return
			}
			total := between(a.rng, 64<<10, 2<<20)
			cut := total * between(a.rng, 10, 90) / 100
			msg := between(a.rng, 16<<10, 256<<10)
			done := 0
			for done < cut && !a.done() {
				n := min(msg, total-done)
				frame := unaryBody(n)
				if done+len(frame) > cut {
					frame = frame[:cut-done] // the cut falls inside a message
				}
				// The upload may go to the raw target while t-freeze holds
				// it (up to 2.5 s): l7lb then rightly returns no window,
				// so the wait outlasts the longest freeze.
				m, err := h.send(a.ctx, st, frame, false, 4*time.Second)
				done += m
				sent += int64(m)
				if err != nil {
					if !a.done() && h.alive() && !h.snapshot(st).ended {
						a.violate("client-window-exhausted", "upload %d: %v; l7lb's window for the client connection is %d after %d reset uploads (%s sent in all)", i, err, h.sendWindow(), reset, sizeText(int(sent)))
					}
					break
				}
			}
			h.rst(st, http2.ErrCodeCancel)
			reset++
			a.sleep(durBetween(a.rng, 0, 20*time.Millisecond))
		}
		a.notef("%d uploads reset, %s sent", reset, sizeText(int(sent)))
		if !a.done() && h.alive() {
			a.idleCheck(h)
		}
	}}
}

// ---- halfmsg ----

func drawHalfMsg(rng *rand.Rand) *actor {
	streams := between(rng, 1, 50)
	ending := pick(rng, "close", "rst")
	return &actor{name: "halfmsg", params: fmt.Sprintf("streams=%d,then=%s", streams, ending), run: func(a *act) {
		h, err := a.dial(h2opts{})
		if err != nil {
			a.notef("dial: %v", err)
			return
		}
		var sts []*h2stream
		for i := 0; i < streams && !a.done(); i++ {
			st, err := h.open(unaryReq())
			if err != nil {
				a.notef("open: %v", err)
				return
			}
			body := unaryBody(between(a.rng, 1<<10, 512<<10))
			if _, err := h.send(a.ctx, st, body[:len(body)/2], false, time.Second); err != nil {
				a.notef("send: %v", err)
			}
			sts = append(sts, st)
		}
		<-a.ctx.Done()
		if ending == "rst" {
			for _, st := range sts {
				h.rst(st, http2.ErrCodeCancel)
			}
			a.idleCheckAfterRound(h)
		}
	}}
}

// idleCheckAfterRound is idleCheck for actors that stall until the round
// ends: the connection may still be checked before it is closed.
func (a *act) idleCheckAfterRound(h *h2conn) {
	if h.alive() {
		a.idleCheck(h)
	}
}

// ---- maxstreams ----

func drawMaxStreams(rng *rand.Rand) *actor {
	over := between(rng, 1, 8)
	holdLo := durBetween(rng, 100*time.Millisecond, 500*time.Millisecond)
	return &actor{name: "maxstreams", params: fmt.Sprintf("streams=MAX_CONCURRENT_STREAMS+%d,hold=%v..1.5s", over, holdLo.Round(time.Millisecond)), run: func(a *act) {
		h, err := a.dial(h2opts{})
		if err != nil {
			a.notef("dial: %v", err)
			return
		}
		h.mu.Lock()
		limit := int(h.peerMaxStreams)
		h.mu.Unlock()
		n := min(limit, 2000) + over
		sts := make([]*h2stream, 0, n)
		body := unaryBody(64)
		for i := 0; i < n && !a.done(); i++ {
			st, err := h.open(unaryReq(hold(durBetween(a.rng, holdLo, 1500*time.Millisecond))))
			if err != nil {
				a.notef("open: %v", err)
				break
			}
			h.send(a.ctx, st, body, true, time.Second)
			sts = append(sts, st)
		}
		h.waitFor(a.ctx, 4*time.Second, func() bool {
			for _, st := range sts {
				if !st.ended {
					return false
				}
			}
			return true
		})
		codes := map[string]int{}
		for _, st := range sts {
			s := h.snapshot(st)
			switch {
			case !s.ended:
				codes["open"]++
			case s.rst:
				codes["rst:"+s.rstCode.String()]++
			default:
				codes["grpc-status:"+s.grpc]++
			}
		}
		a.notef("limit %d, opened %d: %v", limit, len(sts), codes)
		if !a.done() && h.alive() {
			a.idleCheck(h)
		}
		<-a.ctx.Done()
	}}
}

// ---- manyconns ----

func drawManyConns(rng *rand.Rand) *actor {
	n := between(rng, 50, 200)
	return &actor{name: "manyconns", params: fmt.Sprintf("conns=%d", n), run: func(a *act) {
		// Dials are paced (at most 8 at once, one every 10 ms): a burst
		// of 200 TLS handshakes is CPU, which the latency check would
		// count against l7lb on a 2-core machine.
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		var kinds [4]atomic.Int64
		var failed atomic.Int64
		for i := 0; i < n && !a.done(); i++ {
			kind := a.rng.IntN(100)
			holdFor := durBetween(a.rng, 0, 500*time.Millisecond)
			if i > 0 && !a.sleep(10*time.Millisecond) {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				switch {
				case kind < 40: // idle after the preface
					kinds[0].Add(1)
					if _, err := a.dial(h2opts{}); err != nil {
						failed.Add(1)
					}
				case kind < 70: // one call, answer read
					kinds[1].Add(1)
					h, err := a.dial(h2opts{})
					if err != nil {
						failed.Add(1)
						return
					}
					st, err := h.open(unaryReq(hold(holdFor)))
					if err == nil {
						h.send(a.ctx, st, unaryBody(128), true, time.Second)
					}
				case kind < 85: // half a frame header, then nothing
					kinds[2].Add(1)
					h, err := a.dial(h2opts{})
					if err != nil {
						failed.Add(1)
						return
					}
					h.writeRaw([]byte{0, 0, 40, 1, 4})
				default: // TLS, but no HTTP/2 preface
					kinds[3].Add(1)
					c, err := a.tlsOnly()
					if err != nil {
						failed.Add(1)
						return
					}
					a.mu.Lock()
					a.raws = append(a.raws, c)
					a.mu.Unlock()
				}
			}()
		}
		wg.Wait()
		a.notef("idle %d, one call %d, half frame %d, no preface %d, failed dials %d", kinds[0].Load(), kinds[1].Load(), kinds[2].Load(), kinds[3].Load(), failed.Load())
		<-a.ctx.Done()
	}}
}

func (a *act) tlsOnly() (net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	raw, err := d.DialContext(a.ctx, "tcp", a.r.e.addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, &tls.Config{RootCAs: a.r.e.pool, ServerName: serverName, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	tc.SetDeadline(a.r.end.Add(10 * time.Second))
	if err := tc.HandshakeContext(a.ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// ---- target faults (on the raw target; recovered when the round ends) ----

func drawGoAway(rng *rand.Rand) *actor {
	after := between(rng, 1, 5)
	abrupt := rng.IntN(4) == 0
	return &actor{name: "t-goaway", params: fmt.Sprintf("after=%d,abrupt=%v", after, abrupt), run: func(a *act) {
		m := normalMode()
		m.goawayAfter, m.abrupt = after, abrupt
		a.r.raw.setMode(m)
		<-a.ctx.Done()
	}}
}

func drawKill(rng *rand.Rand) *actor {
	times := between(rng, 1, 2)
	down := durBetween(rng, 300*time.Millisecond, 1500*time.Millisecond)
	first := durBetween(rng, 0, time.Second)
	return &actor{name: "t-kill", params: fmt.Sprintf("times=%d,down=%v,first=%v", times, down.Round(time.Millisecond), first.Round(time.Millisecond)), run: func(a *act) {
		if !a.sleep(first) {
			return
		}
		for i := 0; i < times; i++ {
			a.r.raw.kill()
			a.sleep(down)
			if err := a.r.raw.restart(); err != nil {
				a.notef("%v", err)
			}
			if !a.sleep(durBetween(a.rng, 200*time.Millisecond, time.Second)) {
				return
			}
		}
	}}
}

func drawFreeze(rng *rand.Rand) *actor {
	first := durBetween(rng, 0, time.Second)
	frozen := durBetween(rng, 500*time.Millisecond, 2500*time.Millisecond)
	return &actor{name: "t-freeze", params: fmt.Sprintf("first=%v,frozen=%v", first.Round(time.Millisecond), frozen.Round(time.Millisecond)), run: func(a *act) {
		if !a.sleep(first) {
			return
		}
		a.r.raw.freeze()
		a.sleep(frozen)
		a.r.raw.thaw()
	}}
}

func drawTinyWin(rng *rand.Rand) *actor {
	win := pick(rng, uint32(16), uint32(256), uint32(1024), uint32(4096))
	return &actor{name: "t-tinywin", params: fmt.Sprintf("window=%s", sizeText(int(win))), run: func(a *act) {
		m := normalMode()
		m.initWin, m.tiny = win, true
		a.r.raw.setMode(m)
		<-a.ctx.Done()
	}}
}

func drawMCS1(rng *rand.Rand) *actor {
	return &actor{name: "t-mcs1", params: "max=1", run: func(a *act) {
		m := normalMode()
		m.maxStreams = 1
		a.r.raw.setMode(m)
		<-a.ctx.Done()
	}}
}

// catalogueText lists the catalogue for the package documentation and
// -chaos.only's help.
func catalogueText() string {
	var b strings.Builder
	for _, e := range catalogue {
		fmt.Fprintf(&b, "  %-11s %s\n", e.name, e.doc)
	}
	return b.String()
}
