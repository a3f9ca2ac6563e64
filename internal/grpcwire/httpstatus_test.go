package grpcwire

import (
	"testing"

	"google.golang.org/grpc/codes"
)

func TestCodeForHTTPStatus(t *testing.T) {
	for status, want := range map[int]codes.Code{
		200: codes.Unknown, 400: codes.Internal, 401: codes.Unauthenticated, 403: codes.PermissionDenied,
		404: codes.Unimplemented, 429: codes.Unavailable, 500: codes.Unknown, 502: codes.Unavailable,
		503: codes.Unavailable, 504: codes.Unavailable, 418: codes.Unknown,
	} {
		if got := CodeForHTTPStatus(status); got != want {
			t.Errorf("CodeForHTTPStatus(%d) = %v, want %v", status, got, want)
		}
	}
}
