package main

// The idle mode (-idle N): what idle clients cost each balancer. N TLS
// HTTP/2 connections each make one unary RPC and then stay open doing
// nothing; the balancer's RSS with them, minus its RSS before any client,
// divided by N, is the memory one idle connection costs. Every connection
// must still answer a PING afterwards (a balancer that "saves" memory by
// dropping connections fails that). A second part opens silent TCP
// connections that never send a byte (not even a ClientHello) and counts
// how many the balancer still holds 15 s later.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

type idleParams struct {
	Conns       int           `json:"conns"`        // idle TLS h2 connections, one RPC each
	Parallel    int           `json:"parallel"`     // connections opened at once
	Settle      time.Duration `json:"settle"`       // wait after the last one opened, before RSS is read
	Silent      int           `json:"silent"`       // silent TCP connections
	SilentWait  time.Duration `json:"silent_wait"`  // how long they stay silent before being counted
	DialTimeout time.Duration `json:"dial_timeout"` // per connection: TLS handshake, settings, the RPC
}

var defaultIdleParams = idleParams{Conns: 5000, Parallel: 32, Settle: 3 * time.Second, Silent: 1000, SilentWait: 15 * time.Second, DialTimeout: 20 * time.Second}

// IdleRecord is one balancer × run of the idle mode.
type IdleRecord struct {
	Time        string  `json:"time"`
	Run         int     `json:"run"`
	Balancer    string  `json:"balancer"`
	Conns       int     `json:"conns"`
	Opened      int     `json:"opened"` // connections whose RPC succeeded
	OpenErrors  int     `json:"open_errors"`
	FirstError  string  `json:"first_error,omitempty"`
	OpenSeconds float64 `json:"open_seconds"`
	BaseRSSMiB  float64 `json:"base_rss_mib"` // before any client
	IdleRSSMiB  float64 `json:"idle_rss_mib"` // with the idle connections, after Settle
	PerConnKiB  float64 `json:"per_conn_kib"`
	PingOK      int     `json:"ping_ok"` // idle connections that answered a PING afterwards
	SilentOpen  int     `json:"silent_opened"`
	SilentHeld  int     `json:"silent_held"` // still open after SilentWait
	Failed      string  `json:"failed,omitempty"`
}

func runIdle(cfg config, e *env, order []string, meta Meta) error {
	p := defaultIdleParams
	if cfg.idleParams != nil {
		p = *cfg.idleParams
	}
	if cfg.Idle > 0 {
		p.Conns = cfg.Idle
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	jf, err := os.Create(filepath.Join(cfg.Out, "idle.jsonl"))
	if err != nil {
		return err
	}
	defer jf.Close()
	enc := json.NewEncoder(jf)
	var recs []IdleRecord
	seq := 0
	for r := 1; r <= cfg.Repeat; r++ {
		for _, b := range order {
			seq++
			rec := measureIdle(e, b, p, r, seq)
			recs = append(recs, rec)
			if err := enc.Encode(rec); err != nil {
				return err
			}
			fmt.Printf("[%d/%d] run %d idle %s: %s\n", seq, cfg.Repeat*len(order), r, b, idleLine(rec))
		}
	}
	meta.LoadEnd = loadAvg()
	md := idleMarkdown(recs, order, p, meta, cfg)
	fmt.Println()
	fmt.Print(md)
	return os.WriteFile(filepath.Join(cfg.Out, "idle.md"), []byte(md), 0o644)
}

func idleLine(r IdleRecord) string {
	if r.Failed != "" {
		return "FAILED: " + r.Failed
	}
	return fmt.Sprintf("opened %d/%d in %.1fs (errors %d) base %.1f MiB idle %.1f MiB → %.1f KiB/conn; PING answered %d/%d; silent held %d/%d",
		r.Opened, r.Conns, r.OpenSeconds, r.OpenErrors, r.BaseRSSMiB, r.IdleRSSMiB, r.PerConnKiB, r.PingOK, r.Opened, r.SilentHeld, r.SilentOpen)
}

func measureIdle(e *env, name string, p idleParams, runNo, seq int) IdleRecord {
	rec := IdleRecord{Time: time.Now().UTC().Format(time.RFC3339), Run: runNo, Balancer: name, Conns: p.Conns}
	bal, err := startBalancer(e, name, seq)
	if err != nil {
		rec.Failed = err.Error()
		return rec
	}
	defer bal.Stop()
	t := bal.target(e)
	// The probe made one connection; let the balancer settle after it.
	time.Sleep(time.Second)
	rec.BaseRSSMiB = float64(treeKB(procTree(bal.Pid), "VmRSS")) / 1024

	conns, openErrs, firstErr, took := openIdle(t, p)
	defer func() {
		for _, c := range conns {
			c.conn.Close()
		}
	}()
	rec.Opened, rec.OpenErrors, rec.FirstError, rec.OpenSeconds = len(conns), openErrs, firstErr, took.Seconds()
	time.Sleep(p.Settle)
	rec.IdleRSSMiB = float64(treeKB(procTree(bal.Pid), "VmRSS")) / 1024
	if len(conns) > 0 {
		rec.PerConnKiB = (rec.IdleRSSMiB - rec.BaseRSSMiB) * 1024 / float64(len(conns))
	}
	rec.PingOK = pingAll(conns, p)
	for _, c := range conns {
		c.conn.Close()
	}
	conns = nil
	rec.SilentOpen, rec.SilentHeld = silentConns(bal.Addr, p)
	return rec
}

// openIdle opens p.Conns connections, p.Parallel at a time, each making one
// RPC; it returns those that succeeded.
func openIdle(t Target, p idleParams) (conns []*rawConn, errs int, first string, took time.Duration) {
	start := time.Now()
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < p.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(p.Conns) {
				c, err := openOneIdle(t, p.DialTimeout)
				mu.Lock()
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, errs, first, time.Since(start)
}

// openOneIdle dials, makes one unary RPC with a 64-byte reply, and reads
// until the RPC's trailers: then the connection is idle.
func openOneIdle(t Target, timeout time.Duration) (*rawConn, error) {
	c, err := dialRaw(t, nil, 0, timeout)
	if err != nil {
		return nil, err
	}
	c.conn.SetDeadline(time.Now().Add(timeout))
	defer c.conn.SetDeadline(time.Time{})
	id, err := c.openUnary(t.ServerName, 64, 64)
	if err != nil {
		c.conn.Close()
		return nil, err
	}
	for i := 0; i < 64; i++ {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.conn.Close()
			return nil, fmt.Errorf("reading the RPC's answer: %w", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id && f.StreamEnded() {
				if st := f.PseudoValue("status"); st != "" && st != "200" {
					c.conn.Close()
					return nil, fmt.Errorf("HTTP status %s", st)
				}
				for _, hf := range f.RegularFields() {
					if hf.Name == "grpc-status" && hf.Value != "0" {
						c.conn.Close()
						return nil, fmt.Errorf("grpc-status %s", hf.Value)
					}
				}
				return c, nil
			}
		case *http2.RSTStreamFrame:
			c.conn.Close()
			return nil, fmt.Errorf("RST_STREAM %v", f.ErrCode)
		case *http2.GoAwayFrame:
			c.conn.Close()
			return nil, fmt.Errorf("GOAWAY %v", f.ErrCode)
		case *http2.PingFrame:
			if !f.IsAck() {
				c.fr.WritePing(true, f.Data)
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		}
	}
	c.conn.Close()
	return nil, errors.New("no trailers in the first 64 frames")
}

// pingAll sends a PING on every connection and counts the ACKs.
func pingAll(conns []*rawConn, p idleParams) int {
	var ok atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < p.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(conns)) {
					return
				}
				if pingOne(conns[i]) == nil {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

func pingOne(c *rawConn) error {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	data := [8]byte{'i', 'd', 'l', 'e'}
	if err := c.fr.WritePing(false, data); err != nil {
		return err
	}
	for i := 0; i < 16; i++ {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		if pf, ok := f.(*http2.PingFrame); ok {
			if pf.IsAck() && pf.Data == data {
				return nil
			}
			if !pf.IsAck() {
				c.fr.WritePing(true, pf.Data)
			}
		}
	}
	return errors.New("no PING ACK in 16 frames")
}

// silentConns opens n TCP connections that send nothing, waits, and counts
// those still open (a read that times out rather than failing).
func silentConns(addr string, p idleParams) (opened, held int) {
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := 0; i < p.Silent; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue
		}
		cs = append(cs, c)
	}
	time.Sleep(p.SilentWait)
	var buf [1]byte
	for _, c := range cs {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(buf[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			held++
		}
	}
	return len(cs), held
}

func idleMarkdown(recs []IdleRecord, order []string, p idleParams, meta Meta, cfg config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Idle connections: %d TLS HTTP/2 connections, one RPC each, then idle\n\n", p.Conns)
	fmt.Fprintf(&b, "Measured %s with `%s` on %d × %s, %s; load average %.2f before, %.2f after.\n\n",
		meta.Date, idleCommand(cfg), meta.NProc, meta.CPU, meta.Kernel, meta.LoadStart, meta.LoadEnd)
	b.WriteString("RSS is the sum of VmRSS over the balancer's processes: before any client (after one probe RPC), and with every connection open and idle for " +
		p.Settle.String() + ". Per connection = the difference / connections opened. Every connection is then sent a PING and must answer. " +
		fmt.Sprintf("Silent: %d TCP connections that never send a byte, counted %v later.\n\n", p.Silent, p.SilentWait))
	b.WriteString("| balancer | opened | RSS before MiB | RSS idle MiB | per connection KiB | PING answered | silent held |\n|---|---|---|---|---|---|---|\n")
	byBal := map[string][]IdleRecord{}
	for _, r := range recs {
		byBal[r.Balancer] = append(byBal[r.Balancer], r)
	}
	for _, name := range order {
		rs := byBal[name]
		if len(rs) == 0 {
			continue
		}
		var per, base, idle []float64
		var fails []string
		r0 := rs[0]
		for _, r := range rs {
			if r.Failed != "" {
				fails = append(fails, r.Failed)
				continue
			}
			per, base, idle = append(per, r.PerConnKiB), append(base, r.BaseRSSMiB), append(idle, r.IdleRSSMiB)
			r0 = r
		}
		if len(per) == 0 {
			fmt.Fprintf(&b, "| %s | failed: %s | | | | | |\n", name, firstLine(strings.Join(fails, "; ")))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %.1f | %.1f | %.1f | %d/%d | %d/%d |\n", name, r0.Opened, r0.Conns,
			median(base), median(idle), median(per), r0.PingOK, r0.Opened, r0.SilentHeld, r0.SilentOpen)
	}
	return b.String()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func idleCommand(cfg config) string {
	c := fmt.Sprintf("go run ./bench -idle %d", cfg.Idle)
	if len(cfg.Peers) > 0 {
		c += " -peers " + strings.Join(cfg.Peers, ",")
	}
	if cfg.Repeat != 1 {
		c += fmt.Sprintf(" -repeat %d", cfg.Repeat)
	}
	return c
}
