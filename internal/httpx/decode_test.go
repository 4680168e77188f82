package httpx

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDecodeJSONLimitIsExact(t *testing.T) {
	t.Parallel()
	body := `{"a": 1}`
	var v map[string]int
	if err := DecodeJSON(strings.NewReader(body), int64(len(body)), &v); err != nil || v["a"] != 1 {
		t.Fatalf("a body of exactly the limit must pass: %v %v", v, err)
	}
	err := DecodeJSON(strings.NewReader(body), int64(len(body))-1, &v)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over the limit: got %v", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestDecodeJSONKeepsReaderErrors(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection reset")
	err := DecodeJSON(io.MultiReader(strings.NewReader(`{"a": `), failingReader{cause}), 0, &map[string]int{})
	if !errors.Is(err, cause) || errors.Is(err, ErrDecode) {
		t.Fatalf("got %v, want the reader's error, not a decode error", err)
	}
}

func TestDecodeJSONWrongTypeNamesField(t *testing.T) {
	t.Parallel()
	var v struct {
		Data []struct {
			Attributes struct {
				RunNumber int `json:"run_number"`
			} `json:"attributes"`
		} `json:"data"`
	}
	err := DecodeBytes([]byte(`{"data": [{"attributes": {"run_number": true}}]}`), &v)
	if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "data.attributes.run_number") {
		t.Fatalf("got %v", err)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"result": [1, 2]}`, `{"a": {"b": [true, null, "x"]}}`, `{"a"`, ``, `[] []`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v map[string]any
		err := DecodeJSON(strings.NewReader(string(data)), 1<<16, &v)
		if err != nil && !errors.Is(err, ErrDecode) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
