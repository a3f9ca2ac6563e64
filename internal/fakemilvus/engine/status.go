package engine

import (
	"errors"
	"fmt"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
)

// milvusError is an error that the engine reports to the client inside the
// reply body, the way a Milvus proxy does (merr). The code, legacy
// error_code, retriable flag and reason mirror pkg/v2/util/merr so that SDKs
// (which map merr codes back to typed errors) behave as against real Milvus.
type milvusError struct {
	code      int32
	legacy    commonpb.ErrorCode
	retriable bool
	reason    string
}

func (e *milvusError) Error() string { return e.reason }

// merr codes used by the engine (pkg/v2/util/merr/errors.go).
const (
	codeServiceNotReady     int32 = 1
	codeServiceInternal     int32 = 5
	codeCollectionNotFound  int32 = 100
	codeCollectionNotLoaded int32 = 101
	codePartitionNotFound   int32 = 200
	codeIndexNotFound       int32 = 700
	codeDatabaseNotFound    int32 = 800
	codeParameterInvalid    int32 = 1100
	codeFieldNotFound       int32 = 1700
)

func errServiceNotReady() *milvusError {
	return &milvusError{codeServiceNotReady, commonpb.ErrorCode_NotReadyServe, true, "service not ready"}
}

func errCollectionNotFound(name string) *milvusError {
	return &milvusError{codeCollectionNotFound, commonpb.ErrorCode_CollectionNotExists, false,
		fmt.Sprintf("collection not found[collection=%s]", name)}
}

func errCollectionNotLoaded(name string) *milvusError {
	return &milvusError{codeCollectionNotLoaded, commonpb.ErrorCode_UnexpectedError, false,
		fmt.Sprintf("collection not loaded[collection=%s]", name)}
}

func errPartitionNotFound(name string) *milvusError {
	return &milvusError{codePartitionNotFound, commonpb.ErrorCode_MetaFailed, false,
		fmt.Sprintf("partition not found[partition=%s]", name)}
}

func errIndexNotFound(indexName string) *milvusError {
	return &milvusError{codeIndexNotFound, commonpb.ErrorCode_IndexNotExist, false,
		fmt.Sprintf("index not found[indexName=%s]", indexName)}
}

func errIndexNotFoundForCollection(collection string) *milvusError {
	return &milvusError{codeIndexNotFound, commonpb.ErrorCode_IndexNotExist, false,
		fmt.Sprintf("index not found[collection=%s]", collection)}
}

func errDatabaseNotFound(db string) *milvusError {
	return &milvusError{codeDatabaseNotFound, commonpb.ErrorCode_UnexpectedError, false,
		fmt.Sprintf("database not found[database=%s]", db)}
}

func errFieldNotFound(field string) *milvusError {
	return &milvusError{codeFieldNotFound, commonpb.ErrorCode_UnexpectedError, false,
		fmt.Sprintf("field not found[field=%s]", field)}
}

// errInvalid is merr.WrapErrParameterInvalidMsg: the reason is "<msg>: invalid parameter".
func errInvalid(format string, args ...any) *milvusError {
	return &milvusError{codeParameterInvalid, commonpb.ErrorCode_IllegalArgument, false,
		fmt.Sprintf(format, args...) + ": invalid parameter"}
}

// errMismatch is merr.WrapErrParameterInvalid(expected, actual, msg).
func errMismatch(msg string, expected, actual any) *milvusError {
	return &milvusError{codeParameterInvalid, commonpb.ErrorCode_IllegalArgument, false,
		fmt.Sprintf("%s: invalid parameter[expected=%v][actual=%v]", msg, expected, actual)}
}

// statusOf turns a handler error into the in-body status. The reason keeps the
// Milvus wording; the wrapped Go context goes to detail, which SDKs only log.
func statusOf(err error) *commonpb.Status {
	if err == nil {
		return &commonpb.Status{}
	}
	var me *milvusError
	if !errors.As(err, &me) {
		me = &milvusError{codeServiceInternal, commonpb.ErrorCode_UnexpectedError, false, err.Error()}
	}
	return &commonpb.Status{
		ErrorCode: me.legacy,
		Reason:    me.reason,
		Code:      me.code,
		Retriable: me.retriable,
		Detail:    err.Error(),
	}
}

func okStatus() *commonpb.Status { return &commonpb.Status{} }
