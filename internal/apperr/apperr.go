// Package apperr holds the few kinds of error that Spy Agency's callers act on. The web maps each code to
// an HTTP status in one place; the command line maps them to messages and exit codes. Any other error is
// internal: logged in full, shown to clients blandly.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is an error kind.
type Code string

const (
	NotFound     Code = "not_found"
	Invalid      Code = "invalid"
	Conflict     Code = "conflict"
	Unauthorized Code = "unauthorized"
	Forbidden    Code = "forbidden"
	Unavailable  Code = "unavailable"
	Internal     Code = "internal"
)

// Error is an error with a code and a message fit for the person who caused it.
type Error struct {
	Code    Code
	Message string
	Err     error // the cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an Error with a formatted message; a %w verb keeps the cause.
func Errorf(code Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// CodeOf returns the code of the first Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Is says whether err carries the code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }

// HTTPStatus is the status every HTTP answer of Spy Agency gives an error kind.
func HTTPStatus(code Code) int {
	switch code {
	case NotFound:
		return http.StatusNotFound
	case Invalid:
		return http.StatusBadRequest
	case Conflict:
		return http.StatusConflict
	case Unauthorized:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
