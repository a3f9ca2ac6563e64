package grpcwire

import "google.golang.org/grpc/codes"

// CodeForHTTPStatus maps an HTTP status to the gRPC status a client
// derives from it, per gRPC's http-grpc-status-mapping.md: 400 INTERNAL,
// 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429, 502,
// 503 and 504 UNAVAILABLE, anything else UNKNOWN. l7lb answers a gRPC
// request hitting a fixed-response action with it, so that an SDK sees
// the same status it would see from a gRPC-unaware proxy, with the body
// as the message.
func CodeForHTTPStatus(status int) codes.Code {
	switch status {
	case 400:
		return codes.Internal
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.Unimplemented
	case 429, 502, 503, 504:
		return codes.Unavailable
	}
	return codes.Unknown
}
