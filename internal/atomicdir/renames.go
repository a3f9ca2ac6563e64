package atomicdir

import (
	"os"

	"github.com/google/uuid"
)

// exchangeByRenames swaps a and b with three renames through a third name;
// a reader may find b missing for a moment.
func exchangeByRenames(a, b string) error {
	mid := b + ".swap-" + uuid.NewString()
	if err := os.Rename(b, mid); err != nil {
		return err
	}
	if err := os.Rename(a, b); err != nil {
		_ = os.Rename(mid, b)
		return err
	}
	return os.Rename(mid, a)
}
