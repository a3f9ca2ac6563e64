package listener

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Defaults for HTTP1Limits; docs/limits.md says why each is what it is.
const (
	// DefaultHTTP1ReadHeaderTimeout bounds the request line and headers: a
	// client trickling them (slowloris) is cut off after this long.
	DefaultHTTP1ReadHeaderTimeout = 30 * time.Second
	// DefaultHTTP1ReadTimeout bounds reading a whole request, body
	// included: generous, since Milvus's proxy accepts messages of up to
	// 256 MiB (grpc.serverMaxRecvSize), about 3.5 minutes at 10 Mbit/s.
	DefaultHTTP1ReadTimeout = 10 * time.Minute
	// DefaultHTTP1WriteTimeout bounds a request from the end of its
	// headers to the end of its response (net/http's WriteTimeout): Milvus
	// sends messages of up to 512 MiB (grpc.serverMaxSendSize), about 7
	// minutes at 10 Mbit/s.
	DefaultHTTP1WriteTimeout = 10 * time.Minute
	// DefaultMaxHeaderBytes caps an HTTP/1.1 request line and headers, as
	// SETTINGS_MAX_HEADER_LIST_SIZE (64 KiB) does on the HTTP/2 side.
	DefaultMaxHeaderBytes = 64 << 10
)

// HTTP1Limits bound what an HTTP/1.1 client may take of the net/http
// server. A zero field takes its default; a negative timeout means none.
type HTTP1Limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	MaxHeaderBytes    int
}

// withDefaults fills zero fields with the defaults and turns "none"
// (negative) into net/http's zero.
func (h HTTP1Limits) withDefaults() HTTP1Limits {
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	h.ReadHeaderTimeout = pick(h.ReadHeaderTimeout, DefaultHTTP1ReadHeaderTimeout)
	h.ReadTimeout = pick(h.ReadTimeout, DefaultHTTP1ReadTimeout)
	h.WriteTimeout = pick(h.WriteTimeout, DefaultHTTP1WriteTimeout)
	if h.MaxHeaderBytes <= 0 {
		h.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return h
}

// ConnLimit caps the client connections of every listener that shares it
// (one per process). A connection holds its slot from accept until it is
// closed, TLS handshake and HTTP/1.1 keep-alive included.
type ConnLimit struct {
	max  int64
	open atomic.Int64
	log  *slog.Logger
	warn everySecond
	// rejected counts rejections since the last log line.
	rejected atomic.Int64
}

// NewConnLimit returns a cap of max connections (at least 1); rejections
// are logged on log at most once per second.
func NewConnLimit(max int, log *slog.Logger) *ConnLimit {
	if max < 1 {
		max = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ConnLimit{max: int64(max), log: log}
}

// Max is the cap.
func (cl *ConnLimit) Max() int { return int(cl.max) }

// Open is how many connections hold a slot now.
func (cl *ConnLimit) Open() int { return int(cl.open.Load()) }

// acquire takes a slot; false when all are taken.
func (cl *ConnLimit) acquire() bool {
	for {
		n := cl.open.Load()
		if n >= cl.max {
			return false
		}
		if cl.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (cl *ConnLimit) release() { cl.open.Add(-1) }

// rejected counts a connection closed for want of a slot and logs, at
// most once a second, how many were since the last line.
func (cl *ConnLimit) reject(addr string) {
	cl.rejected.Add(1)
	if cl.warn.allow(time.Now()) {
		cl.log.Warn("connection cap reached (--max-conns): closing new client connections at once; connections already open are served as before",
			"max_conns", cl.max, "rejected", cl.rejected.Swap(0), "listener", addr)
	}
}

// everySecond lets one caller through per second, without a lock.
type everySecond struct{ next atomic.Int64 }

func (e *everySecond) allow(now time.Time) bool {
	next := e.next.Load()
	return now.UnixNano() >= next && e.next.CompareAndSwap(next, now.Add(time.Second).UnixNano())
}
