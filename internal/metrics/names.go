package metrics

import (
	"strconv"

	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// Other is the label value for a gRPC service or method outside the known
// set: one value, so a client calling arbitrary paths cannot grow the
// number of series.
const Other = "other"

// method is a known gRPC method's labels, interned once.
type method struct{ service, name string }

// knownMethods maps "/package.Service/Method" to its labels: every method
// of milvus.proto.milvus.MilvusService and grpc.health.v1.Health. Built
// once and only read afterwards, so lookups need no lock.
var knownMethods = func() map[string]method {
	out := map[string]method{}
	for _, sd := range []*grpc.ServiceDesc{&milvuspb.MilvusService_ServiceDesc, &grpc_health_v1.Health_ServiceDesc} {
		for _, m := range sd.Methods {
			out["/"+sd.ServiceName+"/"+m.MethodName] = method{sd.ServiceName, m.MethodName}
		}
		for _, s := range sd.Streams {
			out["/"+sd.ServiceName+"/"+s.StreamName] = method{sd.ServiceName, s.StreamName}
		}
	}
	return out
}()

// grpcMethod returns the service and method labels of a gRPC path; paths
// outside the known services collapse into Other.
func grpcMethod(path string) (service, name string) {
	if m, ok := knownMethods[path]; ok {
		return m.service, m.name
	}
	return Other, Other
}

// grpcCodeNames are the canonical status names (grpc/doc/statuscodes.md).
var grpcCodeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// Code label values that are not a status the peer sent.
const (
	// CodeReset: the stream was reset before any status.
	CodeReset = "RESET"
	// CodeNone: the request ended without a status and without a reset
	// (a gRPC response without grpc-status, an HTTP request never answered).
	CodeNone = "NONE"
)

// grpcCodeName maps a grpc-status value ("0".."16") to its name without
// allocating; anything else is UNKNOWN, as gRPC clients treat it.
func grpcCodeName(v string) string {
	n := 0
	if len(v) == 0 || len(v) > 2 {
		return grpcCodeNames[2]
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return grpcCodeNames[2]
		}
		n = n*10 + int(c-'0')
	}
	if n >= len(grpcCodeNames) {
		return grpcCodeNames[2]
	}
	return grpcCodeNames[n]
}

// httpCodes holds "100".."599" so that labelling an HTTP status does not
// format a number per request.
var httpCodes = func() []string {
	out := make([]string, 600)
	for i := 100; i < 600; i++ {
		out[i] = strconv.Itoa(i)
	}
	return out
}()

func httpCodeName(status int) string {
	if status >= 100 && status < 600 {
		return httpCodes[status]
	}
	return CodeNone
}
