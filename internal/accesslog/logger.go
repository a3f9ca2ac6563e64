// Package accesslog writes one JSON line per finished request, with the
// ALB's access log fields plus the gRPC service, method and status and
// the W3C trace id. The data path only copies a record into a buffered
// channel; one goroutine encodes and writes. When the writer falls behind,
// lines are dropped and counted instead of slowing requests down.
package accesslog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l7lb/l7lb/internal/observe"
)

// Counter hears about written and dropped lines (the metrics).
type Counter interface {
	AccessLogLine()
	AccessLogDropped()
}

// Options configure a Logger.
type Options struct {
	// Sample logs one request in Sample (1 or less: every request).
	// Requests that end in an error are always logged.
	Sample int
	// Buffer is how many lines may wait for the writer (default 8192).
	Buffer int
	// Counter, when set, counts lines.
	Counter Counter
	// FlushInterval bounds how long a written line sits in the buffer
	// (default 1 s).
	FlushInterval time.Duration
}

// Logger is an observe.Observer writing access log lines to a writer.
type Logger struct {
	opts    Options
	w       *bufio.Writer
	ch      chan entry
	stop    chan struct{}
	done    chan struct{}
	n       atomic.Uint64
	dropped atomic.Uint64
	once    sync.Once
	errOnce sync.Once
	err     error
}

// New starts a Logger writing to w. Close stops it.
func New(w io.Writer, opts Options) *Logger {
	if opts.Buffer <= 0 {
		opts.Buffer = 8192
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	l := &Logger{opts: opts, w: bufio.NewWriterSize(w, 64<<10), ch: make(chan entry, opts.Buffer), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// RPCDone implements observe.Observer: it never blocks.
func (l *Logger) RPCDone(r *observe.RPC) {
	if s := uint64(l.opts.Sample); s > 1 && !failed(r) && l.n.Add(1)%s != 0 {
		return
	}
	select {
	case l.ch <- newEntry(r):
	default:
		l.dropped.Add(1)
		if l.opts.Counter != nil {
			l.opts.Counter.AccessLogDropped()
		}
	}
}

// failed: requests worth a line whatever the sampling.
func failed(r *observe.RPC) bool {
	return r.Error != "" || r.Reset != 0 || (r.GRPC && r.GRPCStatus != "0") || r.HTTPStatus >= 500
}

// Dropped is how many lines were dropped because the writer fell behind.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.FlushInterval)
	defer tick.Stop()
	enc := json.NewEncoder(l.w)
	enc.SetEscapeHTML(false)
	for {
		select {
		case e := <-l.ch:
			l.write(enc, &e)
		case <-tick.C:
			l.flush()
		case <-l.stop:
			// Write what is queued, bounded by the buffer's size.
		drain:
			for range cap(l.ch) {
				select {
				case e := <-l.ch:
					l.write(enc, &e)
				default:
					break drain
				}
			}
			l.flush()
			return
		}
	}
}

func (l *Logger) write(enc *json.Encoder, e *entry) {
	line := e.line()
	if err := enc.Encode(&line); err != nil {
		l.fail(err)
		return
	}
	if l.opts.Counter != nil {
		l.opts.Counter.AccessLogLine()
	}
	// Flush when the queue is empty: lines show up at once when traffic
	// is light, and under load many share one write.
	if len(l.ch) == 0 {
		l.flush()
	}
}

func (l *Logger) flush() {
	if err := l.w.Flush(); err != nil {
		l.fail(err)
	}
}

func (l *Logger) fail(err error) {
	l.errOnce.Do(func() { l.err = fmt.Errorf("access log: %w", err) })
}

// Close writes the lines still queued and stops the writer; it returns
// the first write error, if any.
func (l *Logger) Close() error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	return l.err
}
