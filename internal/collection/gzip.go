package collection

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// ScanGzip is Scan for a message compressed with gRPC's "gzip" encoding:
// msg is the compressed message (or its first part when whole is false).
// It inflates at most limit bytes, which is enough since the name comes
// first; a message whose name is not within them reports More while it
// is not whole (the caller's own limit then ends the wait) and Absent
// when it is. Input that is not gzip is Malformed.
//
// Each call inflates from the start: a held message is scanned again as
// its frames arrive, which costs little for the few kilobytes the name
// is within, and compressed requests are rare (the SDKs send none).
func ScanGzip(msg []byte, num protowire.Number, whole bool, limit int) (string, Result) {
	zr, err := gzip.NewReader(bytes.NewReader(msg))
	if err != nil {
		return "", gzipFailure(err, whole)
	}
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(zr, int64(limit)))
	inflatedAll := err == nil && n < int64(limit)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", Malformed
	}
	name, res := Scan(out.Bytes(), num, whole && inflatedAll)
	if res == Malformed && !inflatedAll {
		// Cut off inside a field by the limit or by the input's end.
		res = More
	}
	if res == More && whole {
		return "", Absent // the name is not within limit bytes
	}
	return name, res
}

func gzipFailure(err error, whole bool) Result {
	if !whole && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
		return More
	}
	return Malformed
}
