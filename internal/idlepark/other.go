//go:build !linux

package idlepark

import "syscall"

// Parker does nothing here: Park always fails with ErrUnsupported.
type Parker struct{}

func (p *Parker) park(syscall.RawConn, Waker) error { return ErrUnsupported }
func (p *Parker) cancel(Waker) bool                 { return false }
func (p *Parker) parked() int                       { return 0 }
