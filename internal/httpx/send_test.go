package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSendPostsBodyAndHeaders(t *testing.T) {
	t.Parallel()
	var got *http.Request
	var body []byte
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "thanks") // not JSON: with into nil only the status counts
	})
	c := New(Options{UserAgent: "spyagency-steer", Token: func() (string, error) { return "", nil }})
	meta, err := c.Send(context.Background(), Request{Method: http.MethodPost, URL: url + "/hook?x=1", Body: []byte(`{"run":1}`),
		Header: http.Header{"Idempotency-Key": {"1:1"}}}, nil)
	if err != nil || meta.Status != http.StatusAccepted {
		t.Fatalf("Send = %+v, %v", meta, err)
	}
	h := got.Header
	if got.Method != "POST" || got.URL.RequestURI() != "/hook?x=1" || string(body) != `{"run":1}` ||
		h.Get("Content-Type") != "application/json" || h.Get("Idempotency-Key") != "1:1" ||
		h.Get("User-Agent") != "spyagency-steer" || h.Get("Authorization") != "" {
		t.Errorf("request %s %s %q headers %v", got.Method, got.URL, body, h)
	}
}

func TestRedirectsAreFollowedForReadsOnly(t *testing.T) {
	t.Parallel()
	var landed atomic.Int32
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			landed.Add(1)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"result": []}`)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	c := New(Options{})
	if _, err := c.GetJSON(context.Background(), url+"/x", &sample{}); err != nil || landed.Load() != 1 {
		t.Errorf("GET through a redirect: %v (landed %d)", err, landed.Load())
	}
	_, err := c.Send(context.Background(), Request{Method: http.MethodPost, URL: url + "/x", Body: []byte(`{}`)}, nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusTemporaryRedirect || Retryable(err) || landed.Load() != 1 {
		t.Errorf("POST answered by a redirect: %v (landed %d), want a permanent 307", err, landed.Load())
	}
}

func TestDiscardedReplyIsBounded(t *testing.T) {
	t.Parallel()
	written := make(chan int64, 1)
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		var n int64
		for n < 256<<20 {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	})
	if _, err := New(Options{MaxBytes: 64 << 10}).Send(context.Background(), Request{Method: "POST", URL: url}, nil); err != nil {
		t.Fatal(err)
	}
	if n := <-written; n >= 256<<20 {
		t.Errorf("the server could write %d bytes: the reply was read without a limit", n)
	}
}

func TestStrictRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	url := serve(t, jsonHandler(`{"result": [{"run": 1, "stream": "Express", "new_field": true}]}`, nil))
	if _, err := New(Options{}).GetJSON(context.Background(), url, &sample{}); err != nil {
		t.Errorf("lenient: %v", err)
	}
	_, err := New(Options{Strict: true}).GetJSON(context.Background(), url, &sample{})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindDecode || !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), `unknown field "new_field"`) {
		t.Errorf("strict: %v, want a decode error naming new_field", err)
	}
	if err := DecodeBytesStrict([]byte(`{"result": [], "x": 1}`), &sample{}); !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("DecodeBytesStrict: %v", err)
	}
}

func TestAPIErrorIsRead(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": "run 1 is not known", "code": "not_found"})
	})
	_, err := New(Options{}).GetJSON(context.Background(), url+"/api/v1/runs/1", &sample{})
	var e *Error
	if !errors.As(err, &e) || e.APIMessage != "run 1 is not known" || e.APICode != "not_found" || e.Status != 404 {
		t.Errorf("got %#v", err)
	}
}

func TestRetryAfterAsADate(t *testing.T) {
	t.Parallel()
	// Relative to the reply's own Date, whatever the local clock says.
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Sat, 14 Jun 2025 08:12:41 GMT")
		w.Header().Set("Retry-After", "Sat, 14 Jun 2025 08:14:11 GMT")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, err := New(Options{}).GetJSON(context.Background(), url, &sample{})
	if RetryAfter(err) != 90*time.Second || !Retryable(err) {
		t.Errorf("RetryAfter = %v (%v), want 90s", RetryAfter(err), err)
	}
	t0 := time.Date(2025, 6, 14, 8, 12, 41, 0, time.UTC)
	for v, want := range map[string]time.Duration{"Sun, 15 Jun 2025 08:12:41 GMT": 24 * time.Hour, "soon": 0, "": 0,
		"120": 2 * time.Minute, "-3": 0, "Fri, 13 Jun 2025 08:12:41 GMT": 0} {
		if got := ParseRetryAfter(v, t0); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestTooEarlyIsRetryable(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooEarly) })
	if _, err := New(Options{}).GetJSON(context.Background(), url, &sample{}); !Retryable(err) {
		t.Errorf("425: %v, want retryable", err)
	}
}

// TestErrorsHaveNoSecrets: a URL with a password or a token in its query, the transport's error and the
// server's reply never carry them into the error.
func TestErrorsHaveNoSecrets(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "upstream postgres://spy:hunter3@db/pcl refused")
	})
	host := strings.TrimPrefix(url, "http://")
	for _, u := range []string{"http://u:hunter2@" + host + "/x?access_token=hunter2", "http://u:hunter2@127.0.0.1:1/x?token=hunter2"} {
		_, err := New(Options{Timeout: 5 * time.Second}).GetJSON(context.Background(), u, &sample{})
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		if s := err.Error(); strings.Contains(s, "hunter2") || strings.Contains(s, "hunter3") {
			t.Errorf("error keeps a secret: %s", s)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestGetDecodesWithTheFormatsDecoder(t *testing.T) {
	t.Parallel()
	url := serve(t, jsonHandler(`{"result": [392671]}`, map[string]string{"Cache-Control": "max-age=300"}))
	decode := func(b []byte) (int, error) {
		var s struct{ Result []int }
		if err := DecodeBytes(b, &s); err != nil {
			return 0, err
		}
		if len(s.Result) != 1 {
			return 0, fmt.Errorf("%w: want one run", ErrDecode)
		}
		return s.Result[0], nil
	}
	n, meta, err := Get(context.Background(), New(Options{}), url, decode)
	if err != nil || n != 392671 || meta.MaxAge != 5*time.Minute {
		t.Fatalf("Get = %d, %+v, %v", n, meta, err)
	}
	bad := serve(t, jsonHandler(`{"result": []}`, nil))
	_, _, err = Get(context.Background(), New(Options{}), bad, decode)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindDecode || e.Status != 200 || Retryable(err) || !errors.Is(err, ErrDecode) ||
		err.Error() != "GET "+bad+": invalid JSON: want one run" {
		t.Errorf("refused reply: %v", err)
	}
}
