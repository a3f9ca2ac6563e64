package frameio

// Batch defers waking writers until the goroutine that appended frames is
// about to block: a reader goroutine that processes many frames from one
// read then wakes each writer it touched once, and those writers send the
// frames of many streams in one syscall. A Batch belongs to one goroutine.
type Batch struct {
	ws []*Writer
}

// Kick schedules w; a nil Batch kicks at once.
func (b *Batch) Kick(w *Writer) {
	if b == nil {
		w.Kick()
		return
	}
	for _, x := range b.ws {
		if x == w {
			return
		}
	}
	b.ws = append(b.ws, w)
}

// Flush wakes every scheduled writer.
func (b *Batch) Flush() {
	for i, w := range b.ws {
		w.Kick()
		b.ws[i] = nil
	}
	b.ws = b.ws[:0]
}
