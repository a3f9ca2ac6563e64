package grpcwire

import "google.golang.org/protobuf/encoding/protowire"

// Milvus's "this proxy did nothing" status: merr code 1 (ServiceNotReady)
// or the legacy error_code 56 (NotReadyServe). Milvus answers it with gRPC
// OK and the status inside the reply (milvus-protocol.md §5).
const (
	milvusCodeNotReady   = 1
	milvusLegacyNotReady = 56
)

// IsServiceNotReady reports whether msg, the first bytes of a Milvus
// reply message (without the 5-byte gRPC prefix), carries ServiceNotReady.
// Replies either are a common.Status (error_code = 1, code = 3) or hold
// one in field 1; the status sits at the start, so a prefix is enough.
func IsServiceNotReady(msg []byte) bool {
	num, typ, n := protowire.ConsumeTag(msg)
	if n < 0 || num != 1 {
		return false
	}
	if typ == protowire.BytesType {
		inner, m := protowire.ConsumeBytes(msg[n:])
		if m < 0 {
			// Truncated: read what is there.
			_, l := protowire.ConsumeVarint(msg[n:])
			if l < 0 {
				return false
			}
			inner = msg[n+l:]
		}
		return statusNotReady(inner)
	}
	return statusNotReady(msg)
}

// statusNotReady reads a common.Status's error_code (1) and code (3).
func statusNotReady(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return false
			}
			b = b[m:]
			if (num == 1 && v == milvusLegacyNotReady) || (num == 3 && v == milvusCodeNotReady) {
				return true
			}
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		b = b[m:]
	}
	return false
}
