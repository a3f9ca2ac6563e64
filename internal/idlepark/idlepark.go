// Package idlepark lets an idle connection wait for its next byte without
// a goroutine.
//
// A goroutine blocked in Read keeps its stack (8 KiB or more once the
// connection has done real work) and its read buffer for as long as the
// connection lives. For a balancer in front of thousands of clients that
// connect once and then sit idle, those stacks were the largest part of
// what an idle connection cost. A parked connection's socket is instead
// watched by one epoll instance for the whole process, and its owner's
// Wake runs when the socket becomes readable or the peer hangs up; the
// owner then starts a goroutine to read again.
//
// Rules for the owner: a parked connection must be taken out with Cancel
// before its socket is closed (closing a socket silently drops it from
// epoll, and the owner would never hear of it again). Wake is called on
// the parker's goroutine: it must only start work elsewhere.
package idlepark

import (
	"errors"
	"syscall"
)

// Waker is told when its parked connection can be read.
type Waker interface{ Wake() }

// ErrUnsupported: this system has no parking (the caller keeps a
// goroutine blocked in Read instead).
var ErrUnsupported = errors.New("idlepark: not supported on this system")

// Default is the process's parker.
var Default = &Parker{}

// Park watches rc's socket for w: once readable (or hung up), w.Wake runs,
// once. A Waker parks at most one socket at a time.
func (p *Parker) Park(rc syscall.RawConn, w Waker) error { return p.park(rc, w) }

// Cancel takes w's socket out if it is still parked and reports whether it
// was (then Wake will not run for it).
func (p *Parker) Cancel(w Waker) bool { return p.cancel(w) }

// Parked is the number of sockets parked now.
func (p *Parker) Parked() int { return p.parked() }
