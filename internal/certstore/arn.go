package certstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// ARNPrefix is the fixed part of every ARN this store hands out. It mirrors
// ACM's arn:aws:acm:<region>:<account>:certificate/<id> so that an Ingress
// written for AWS only needs its certificate-arn value swapped.
const ARNPrefix = "arn:l7lb:acm:local:000000000000:certificate/"

// ErrInvalidARN is returned for a string that is not one of our ARNs.
var ErrInvalidARN = errors.New("not an l7lb certificate ARN")

// ARN returns the ARN for a certificate id.
func ARN(id string) string { return ARNPrefix + id }

// ParseARN returns the certificate id inside arn. It accepts only the exact
// shape ARN produces, with a canonical lower-case UUID, because the id names a
// directory: anything looser would let "../" or a differently spelled UUID
// reach the file system.
func ParseARN(arn string) (string, error) {
	id, ok := strings.CutPrefix(arn, ARNPrefix)
	if !ok {
		return "", fmt.Errorf("%w: %q (want %s<uuid>)", ErrInvalidARN, arn, ARNPrefix)
	}
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return "", fmt.Errorf("%w: %q: id is not a lower-case UUID", ErrInvalidARN, arn)
	}
	return id, nil
}

// IsARN reports whether s has the shape of an ARN from this store (it may
// still be unknown to a particular store).
func IsARN(s string) bool {
	_, err := ParseARN(s)
	return err == nil
}
