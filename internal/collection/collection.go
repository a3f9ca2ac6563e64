// Package collection finds the Milvus collection a gRPC request names:
// the collection_name field of the request message of each MilvusService
// method, read with protowire at the field number milvus-proto's own
// descriptors give (never a table written by hand, which would drift from
// the protocol).
package collection

import (
	"errors"
	"io"

	// Registers milvus.proto's descriptors in protoregistry.GlobalFiles.
	_ "github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// serviceName is MilvusService's full name; its methods' :path is
// "/" + serviceName + "/" + method.
const serviceName = "milvus.proto.milvus.MilvusService"

// fields maps a method's :path to the collection_name field number of its
// request. Built once at start-up, read-only afterwards.
var fields = build()

func build() map[string]protowire.Number {
	out := map[string]protowire.Number{}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(serviceName)
	if err != nil {
		return out // Methods() == 0: the tests notice
	}
	svc, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return out
	}
	methods := svc.Methods()
	for i := range methods.Len() {
		m := methods.Get(i)
		if n, ok := collectionField(m.Input()); ok {
			out["/"+serviceName+"/"+string(m.Name())] = n
		}
	}
	return out
}

// collectionField is the number of the request's collection name: the
// field named collection_name (a few older requests spell it
// collectionName), a single string.
func collectionField(md protoreflect.MessageDescriptor) (protowire.Number, bool) {
	for _, name := range []protoreflect.Name{"collection_name", "collectionName"} {
		f := md.Fields().ByName(name)
		if f != nil && f.Kind() == protoreflect.StringKind && f.Cardinality() != protoreflect.Repeated {
			return f.Number(), true
		}
	}
	return 0, false
}

// Field returns the field number of the collection name in the request of
// the method at path ("/milvus.proto.milvus.MilvusService/Search"); ok is
// false for methods whose request names no single collection.
func Field(path string) (n protowire.Number, ok bool) {
	n, ok = fields[path]
	return n, ok
}

// Methods is how many methods have a collection field (for tests).
func Methods() int { return len(fields) }

// Result of Scan.
type Result uint8

const (
	// Found: the field is there, whole.
	Found Result = iota
	// Absent: the message is whole and has no such field.
	Absent
	// More: the bytes end before the field was found or ruled out.
	More
	// Malformed: the bytes are not a protobuf message.
	Malformed
)

// Scan looks for field num (a length-delimited string) in msg, a message
// without its 5-byte gRPC prefix, or the first part of one when whole is
// false. SDKs write the field once, near the start (protobuf-go writes
// fields in number order, protobufjs in declaration order; either way
// collection_name comes before the vectors), so a prefix is usually
// enough. A crafted message may carry the field twice, and protobuf (so
// Milvus) takes the last: Scan reads every field of the bytes it has and
// returns the last occurrence among them. Only a message split before a
// second occurrence can still differ, which is why a collection rule is
// routing, not access control.
func Scan(msg []byte, num protowire.Number, whole bool) (string, Result) {
	var name []byte
	found := false
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return scanEnd(name, found, failure(l, whole))
		}
		v := protowire.ConsumeFieldValue(n, typ, msg[l:])
		if v < 0 {
			return scanEnd(name, found, failure(v, whole))
		}
		if n == num && typ == protowire.BytesType {
			name, _ = protowire.ConsumeBytes(msg[l:])
			found = true
		}
		msg = msg[l+v:]
	}
	switch {
	case found:
		return string(name), Found
	case whole:
		return "", Absent
	}
	return "", More
}

// scanEnd is Scan's answer when the bytes end inside a field: the name
// found before it, if any, unless the bytes are no protobuf at all.
func scanEnd(name []byte, found bool, res Result) (string, Result) {
	if found && res == More {
		return string(name), Found
	}
	return "", res
}

// failure tells a message cut short (More, while it is not whole) from
// bytes that are no protobuf.
func failure(code int, whole bool) Result {
	if !whole && errors.Is(protowire.ParseError(code), io.ErrUnexpectedEOF) {
		return More
	}
	return Malformed
}
