package grpcwire

import (
	"testing"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/protobuf/proto"
)

func TestIsServiceNotReady(t *testing.T) {
	notReady := &commonpb.Status{ErrorCode: commonpb.ErrorCode_NotReadyServe, Code: 1, Reason: "service not ready", Retriable: true}
	ok := &commonpb.Status{}
	other := &commonpb.Status{ErrorCode: commonpb.ErrorCode_UnexpectedError, Code: 100, Reason: "collection not found"}
	tests := []struct {
		name string
		msg  proto.Message
		want bool
	}{
		{"bare status not ready", notReady, true},
		{"bare status ok", ok, false},
		{"bare status other error", other, false},
		{"reply with status not ready", &milvuspb.SearchResults{Status: notReady, CollectionName: "c"}, true},
		{"reply ok", &milvuspb.SearchResults{Status: ok, CollectionName: "c"}, false},
		{"reply other error", &milvuspb.BoolResponse{Status: other}, false},
		{"only new code", &milvuspb.BoolResponse{Status: &commonpb.Status{Code: 1}}, true},
	}
	for _, tc := range tests {
		b, err := proto.Marshal(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := IsServiceNotReady(b); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}
