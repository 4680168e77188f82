package httpx

import (
	"bytes"
	"encoding/json"
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

// A body kept raw is checked in one pass; it must be accepted, kept and refused exactly as the
// stream decoder would, with the stream decoder's words for what is wrong. DecodeBytes' two-pass
// path likewise.
func FuzzRawAgreesWithStream(f *testing.F) {
	for _, s := range []string{`{"result": [1, 2]}`, " \n{\"a\": 1}\t ", `{"a"`, ``, `[] []`, `{} x`, `"\u00e9"`, "\x00", `[1,]`, "{\"a\":1}\u00a0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, max := range []int64{8, 1 << 16} {
			var fast, slow json.RawMessage
			errFast := decode(strings.NewReader(string(data)), max, &fast, false)
			errSlow := decodeStream(strings.NewReader(string(data)), max, &slow, false)
			if (errFast == nil) != (errSlow == nil) || (errFast != nil && errFast.Error() != errSlow.Error()) {
				t.Fatalf("max %d, %q: raw path %v, stream %v", max, data, errFast, errSlow)
			}
			if errFast == nil && !bytes.Equal(fast, slow) {
				t.Fatalf("max %d, %q: raw path kept %q, stream %q", max, data, fast, slow)
			}
		}
		var a, b any
		errA := DecodeBytes(data, &a)
		errB := DecodeJSON(strings.NewReader(string(data)), int64(len(data))+1, &b)
		if (errA == nil) != (errB == nil) || (errA != nil && errA.Error() != errB.Error()) {
			t.Fatalf("%q: DecodeBytes %v, stream %v", data, errA, errB)
		}
	})
}
