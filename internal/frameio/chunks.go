package frameio

import "sync"

// chunkSize is the size of the pooled pieces frames are written into.
const chunkSize = 64 << 10

type chunk = [chunkSize]byte

// The pool holds whole arrays, so putting a piece back allocates nothing.
var chunkPool = sync.Pool{New: func() any { return new(chunk) }}

// chunks is a write buffer made of pooled, fixed-size pieces: appending
// never copies what is already buffered (a single growing slice would
// copy a large message again at every doubling), and the pieces go to
// the socket with one writev.
type chunks struct {
	bufs []([]byte) // filled parts, in order
	arrs []*chunk   // the arrays behind bufs, to give back
	n    int
	// slices handed out by take and given back, reused to avoid garbage.
	spareBufs [][]byte
	spareArrs []*chunk
}

func (c *chunks) len() int { return c.n }

// write appends p.
func (c *chunks) write(p []byte) {
	c.n += len(p)
	for len(p) > 0 {
		if len(c.bufs) == 0 || len(c.bufs[len(c.bufs)-1]) == chunkSize {
			a := chunkPool.Get().(*chunk)
			c.arrs = append(c.arrs, a)
			c.bufs = append(c.bufs, a[:0])
		}
		last := &c.bufs[len(c.bufs)-1]
		k := copy((*last)[len(*last):chunkSize], p)
		*last = (*last)[:len(*last)+k]
		p = p[k:]
	}
}

// take hands over the buffered pieces (net.Buffers.WriteTo consumes the
// slices) and the arrays to give back with release afterwards.
func (c *chunks) take() ([][]byte, []*chunk) {
	b, a := c.bufs, c.arrs
	c.bufs, c.arrs, c.n = c.spareBufs, c.spareArrs, 0
	c.spareBufs, c.spareArrs = nil, nil
	return b, a
}

// giveBack lets take's slices be reused once written and released.
func (c *chunks) giveBack(b [][]byte, a []*chunk) {
	if c.spareBufs == nil && cap(b) <= 256 {
		clear(b[:cap(b)])
		c.spareBufs, c.spareArrs = b[:0], a[:0]
	}
}

// release returns arrays to the pool.
func release(arrs []*chunk) {
	for i, a := range arrs {
		chunkPool.Put(a)
		arrs[i] = nil
	}
}
