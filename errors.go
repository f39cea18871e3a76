// Package odometer holds Odometer's domain: events, meters, usage queries,
// exact decimals, the error codes every layer shares, and the storage
// interfaces that the sqlite and postgres packages implement.
//
// It depends on the standard library and a few small libraries for decimals
// and JSON paths only; storage, HTTP and wiring live in sibling packages.
package odometer

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. Callers branch on codes, never on messages; the api package
// maps each code to one HTTP status in exactly one place.
const (
	EINVALID     = "invalid"     // the input is malformed or violates a rule
	ENOTFOUND    = "not_found"   // the object does not exist (in this namespace)
	ECONFLICT    = "conflict"    // the object exists already or changed under us
	EFORBIDDEN   = "forbidden"   // the caller may not do this (e.g. use an AWS account it was not granted)
	ETOOLARGE    = "too_large"   // the request exceeds a configured size limit
	EUNAVAILABLE = "unavailable" // overloaded or shutting down; retry later
	EINTERNAL    = "internal"    // a bug or an unexpected storage failure
)

// FieldError names one rejected field and why. Index is the position of the
// event in a batch, or -1 when the error is not about a batch element.
type FieldError struct {
	Index  int    `json:"index"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e FieldError) String() string {
	if e.Index >= 0 {
		return fmt.Sprintf("event %d: %s: %s", e.Index, e.Field, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

// Error is an error with a code, a message meant for the API user, and
// optionally the fields that caused it.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	parts := make([]string, 0, len(e.Fields))
	for _, f := range e.Fields {
		parts = append(parts, f.String())
	}
	return e.Message + ": " + strings.Join(parts, "; ")
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error about a single field.
func FieldErrorf(field, format string, args ...any) *Error {
	reason := fmt.Sprintf(format, args...)
	return &Error{
		Code:    EINVALID,
		Message: fmt.Sprintf("invalid %s: %s", field, reason),
		Fields:  []FieldError{{Index: -1, Field: field, Reason: reason}},
	}
}

// ForbiddenFieldf returns an EFORBIDDEN *Error about a single field: the
// value is well formed, but the caller may not use it.
func ForbiddenFieldf(field, format string, args ...any) *Error {
	reason := fmt.Sprintf(format, args...)
	return &Error{
		Code:    EFORBIDDEN,
		Message: fmt.Sprintf("%s not allowed: %s", field, reason),
		Fields:  []FieldError{{Index: -1, Field: field, Reason: reason}},
	}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the message of an
// *Error, or a generic text for internal errors, whose details belong in logs.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorFields returns the field errors of the first *Error in err's chain.
func ErrorFields(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
