package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind says what went wrong with a request.
type Kind string

const (
	KindRequest     Kind = "request"      // the URL or request could not be built
	KindAuth        Kind = "auth"         // no token could be had
	KindNetwork     Kind = "network"      // connection refused, reset, DNS...
	KindTimeout     Kind = "timeout"      // no complete answer within the per-request timeout
	KindCanceled    Kind = "canceled"     // the caller gave up
	KindStatus      Kind = "status"       // a non-2xx status
	KindHTML        Kind = "html"         // a 2xx answer that is an HTML page (proxy, login page)
	KindContentType Kind = "content-type" // a 2xx answer of another non-JSON type
	KindTooLarge    Kind = "too-large"    // the body exceeds the limit
	KindDecode      Kind = "decode"       // the body is not the JSON expected
)

// Error is a failed request. It names the method and the URL (without secrets) so that logs and health
// say which request failed.
type Error struct {
	Method     string
	URL        string
	Status     int // 0 when no reply came
	Kind       Kind
	Snippet    string        // the start of an unexpected body
	RetryAfter time.Duration // the server's Retry-After, if it gave one
	// APIMessage and APICode are Spy Agency's own {"error", "code"} when the body was one.
	APIMessage, APICode string
	Err                 error
}

func (e *Error) Error() string {
	method := e.Method
	if method == "" {
		method = "GET"
	}
	msg := fmt.Sprintf("%s %s: %v", method, e.URL, e.Err)
	if e.Snippet != "" {
		msg += ": " + e.Snippet
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable says whether the same request may succeed soon: timeouts, network failures, 5xx, 408 (request
// timeout), 425 (too early) and 429 (too many requests). Any other 4xx, a 3xx not followed, a decode
// error, a body too large or HTML on a 2xx will fail again the same way.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindNetwork, KindTimeout:
		return true
	case KindStatus:
		return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooEarly ||
			e.Status == http.StatusTooManyRequests
	}
	return false
}

// Retryable says whether err is worth retrying. Any error in the chain with a Retryable() bool method
// decides (httpx errors, and those of spies whose sources are files or databases), and a deadline that passed is
// retryable; everything else, cancellation included, is permanent.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// RetryAfter returns the delay a server asked for with Retry-After, or zero.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// MarkRetryable wraps err so that Retryable reports retry: for spies whose own sources (files, databases)
// fail transiently.
func MarkRetryable(err error) error {
	if err == nil {
		return nil
	}
	return retryableError{err}
}

type retryableError struct{ error }

func (r retryableError) Unwrap() error   { return r.error }
func (r retryableError) Retryable() bool { return true }
