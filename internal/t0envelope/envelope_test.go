package t0envelope

import (
	"encoding/json"
	"errors"
	"math"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/httpx"
)

// The layout of cms-interfaces.md §2, to the byte.
func TestMarshalLayout(t *testing.T) {
	t.Parallel()
	type row struct {
		Run    uint32 `json:"run"`
		Stream string `json:"stream"`
	}
	for _, c := range []struct {
		elems any
		want  string
	}{
		{[]row{{392671, "Express"}, {392671, "ExpressAlignment"}}, "{\"result\": [\n {\"run\":392671,\"stream\":\"Express\"}\n,{\"run\":392671,\"stream\":\"ExpressAlignment\"}\n]}\n"},
		{[]uint32{392672}, "{\"result\": [\n 392672\n]}\n"},
		{[]bool{}, "{\"result\": [\n]}\n"},
		{[]string(nil), "{\"result\": [\n]}\n"},
	} {
		var got []byte
		var err error
		switch e := c.elems.(type) {
		case []row:
			got, err = Marshal(e)
		case []uint32:
			got, err = Marshal(e)
		case []bool:
			got, err = Marshal(e)
		case []string:
			got, err = Marshal(e)
		}
		if err != nil || string(got) != c.want {
			t.Errorf("Marshal(%v) = %q, %v; want %q", c.elems, got, err, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("Marshal(%v) is not one JSON document", c.elems)
		}
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	rec.Header().Set("Cache-Control", "no-store")
	if err := Write(rec, []any{"world"}); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" ||
		rec.Body.String() != "{\"result\": [\n \"world\"\n]}\n" {
		t.Errorf("Write: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
	// An element that cannot be encoded writes nothing, so the caller can still answer an error.
	rec = httptest.NewRecorder()
	if err := Write(rec, []any{1, math.NaN()}); err == nil || !strings.Contains(err.Error(), "element 1") {
		t.Errorf("Write of NaN: %v", err)
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
		t.Errorf("Write of NaN wrote %q", rec.Body)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	got, err := Decode[uint32]([]byte("{\"result\": [\n 392672\n]}\n"))
	if err != nil || !reflect.DeepEqual(got, []uint32{392672}) {
		t.Errorf("Decode = %v, %v", got, err)
	}
	if got, err := Decode[bool]([]byte(`{"result": [], "extra": 1}`)); err != nil || len(got) != 0 {
		t.Errorf("empty result with an extra field: %v, %v", got, err)
	}
	for _, bad := range []string{`{}`, `{"result": null}`, `{"result": [1]} x`, `{"result": [`, `<html>`, `{"result": ["a"]}`} {
		if _, err := Decode[uint32]([]byte(bad)); !errors.Is(err, httpx.ErrDecode) {
			t.Errorf("Decode(%q) = %v, want a decode error", bad, err)
		}
	}
}

// FuzzDecode: whatever Decode accepts, Marshal writes back in a form Decode reads to the same elements.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"{\"result\": [\n {\"run\": 1}\n,{\"run\": 2, \"x\": [true]}\n]}\n", `{"result": []}`, `{"result": [null]}`, `{"result": 3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		elems, err := Decode[json.RawMessage](data)
		if err != nil {
			if !errors.Is(err, httpx.ErrDecode) && !errors.Is(err, httpx.ErrTooLarge) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		out, err := Marshal(elems)
		if err != nil {
			t.Fatalf("Marshal of decoded elements: %v", err)
		}
		again, err := Decode[json.RawMessage](out)
		if err != nil || len(again) != len(elems) {
			t.Fatalf("round trip: %d elements, %v; want %d", len(again), err, len(elems))
		}
	})
}
