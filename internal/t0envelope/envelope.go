// Package t0envelope is Tier-0 Data Service's reply envelope, {"result": [...]} (cms-interfaces.md §2),
// written and read in one place. The simulated Data Service and the agency's pull API (which answers
// Tier-0 in the envelope it knows) write it with Marshal or Write; the Tier-0 spy and the simulated
// Tier-0 asking the agency read it with Decode.
package t0envelope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/cms-pcl/spyagency/internal/httpx"
)

// Marshal renders elems as the Data Service writes its replies, in chunks: `{"result": [` and a newline,
// one element per line (the first after a space, the others after a comma), then `]}` and a newline.
// Clients that read Tier-0's replies line by line read these the same way; it is still one JSON
// document.
func Marshal[T any](elems []T) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{\"result\": [\n")
	for i := range elems {
		el, err := json.Marshal(elems[i])
		if err != nil {
			return nil, fmt.Errorf("result element %d: %w", i, err)
		}
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		b.Write(el)
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	return b.Bytes(), nil
}

// Write answers 200 with elems in the envelope, as application/json; the caller sets its own caching
// headers first. When an element cannot be encoded nothing is written and the error is returned, so
// that the caller can answer its own way.
func Write[T any](w http.ResponseWriter, elems []T) error {
	body, err := Marshal(elems)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// Decode reads the envelope's elements. A reply without a result array is an error: the service always
// sends one, even when empty. Unknown fields beside result or in its elements are ignored (the service
// adds fields over time); every error wraps httpx.ErrDecode or httpx.ErrTooLarge.
func Decode[T any](data []byte) ([]T, error) {
	var env struct {
		Result *[]T `json:"result"`
	}
	if err := httpx.DecodeBytes(data, &env); err != nil {
		return nil, err
	}
	if env.Result == nil {
		return nil, fmt.Errorf("%w: no \"result\" array in the reply", httpx.ErrDecode)
	}
	return *env.Result, nil
}
