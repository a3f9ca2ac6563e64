package idlepark

import (
	"fmt"
	"sync"
	"syscall"
)

// epollOneShot is EPOLLONESHOT (syscall lacks it on some architectures).
const epollOneShot = 1 << 30

// Parker is one epoll instance and the goroutine that waits on it.
type Parker struct {
	once sync.Once
	epfd int
	err  error

	mu     sync.Mutex
	next   uint64
	byID   map[uint64]parkedConn
	byWake map[Waker]uint64
}

type parkedConn struct {
	fd int
	w  Waker
}

func (p *Parker) start() error {
	p.once.Do(func() {
		p.epfd, p.err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if p.err != nil {
			p.err = fmt.Errorf("idlepark: epoll_create1: %w", p.err)
			return
		}
		p.mu.Lock()
		p.byID, p.byWake = map[uint64]parkedConn{}, map[Waker]uint64{}
		p.mu.Unlock()
		go p.run()
	})
	return p.err
}

func (p *Parker) park(rc syscall.RawConn, w Waker) error {
	if err := p.start(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.byWake[w]; dup {
		return fmt.Errorf("idlepark: %v is already parked", w)
	}
	p.next++
	id := p.next
	var ctlErr error
	// Inside Control the descriptor cannot be closed under us: a close
	// that raced this park either happened before (Control fails) or
	// waits for it, and then Cancels (under p.mu) before closing.
	err := rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollOneShot, Fd: int32(id), Pad: int32(id >> 32)}
		ctlErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		if ctlErr == nil {
			p.byID[id] = parkedConn{fd: int(fd), w: w}
			p.byWake[w] = id
		}
	})
	if err != nil {
		return err
	}
	if ctlErr != nil {
		return fmt.Errorf("idlepark: epoll_ctl: %w", ctlErr)
	}
	return nil
}

func (p *Parker) cancel(w Waker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.byWake[w]
	if !ok {
		return false
	}
	p.forgetLocked(id)
	return true
}

// forgetLocked drops a parked socket; its descriptor is still open (the
// owner closes only after Cancel, and a woken one is not closed before
// its owner runs again).
func (p *Parker) forgetLocked(id uint64) parkedConn {
	pc := p.byID[id]
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, pc.fd, nil) //nolint:errcheck // a one-shot entry may be gone already; nothing to do then
	delete(p.byID, id)
	delete(p.byWake, pc.w)
	return pc
}

func (p *Parker) parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byID)
}

func (p *Parker) run() {
	var events [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(p.epfd, events[:], -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			// Nothing sensible is left to do: parked connections still
			// wake when their owners close them (Cancel).
			return
		}
		var woken []Waker
		p.mu.Lock()
		for i := 0; i < n; i++ {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if _, ok := p.byID[id]; ok {
				woken = append(woken, p.forgetLocked(id).w)
			}
		}
		p.mu.Unlock()
		for _, w := range woken {
			w.Wake()
		}
	}
}
