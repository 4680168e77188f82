package apperr

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestCodesAndStatuses(t *testing.T) {
	t.Parallel()
	cause := errors.New("disk full")
	err := fmt.Errorf("append: %w", Errorf(Unavailable, "store %s: %w", "/data/spy.db", cause))
	if CodeOf(err) != Unavailable || !Is(err, Unavailable) || !errors.Is(err, cause) {
		t.Errorf("code %s, cause kept %v", CodeOf(err), errors.Is(err, cause))
	}
	if CodeOf(errors.New("plain")) != Internal || Is(nil, Internal) {
		t.Error("a plain error is internal; nil is nothing")
	}
	want := map[Code]int{NotFound: 404, Invalid: 400, Conflict: 409, Unauthorized: 401, Forbidden: 403,
		Unavailable: 503, Internal: 500, "something-else": 500}
	for code, status := range want {
		if got := HTTPStatus(code); got != status {
			t.Errorf("%s: %d, want %d (%s)", code, got, status, http.StatusText(status))
		}
	}
}
