package httpx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type sample struct {
	Result []struct {
		Run    int    `json:"run"`
		Stream string `json:"stream"`
	} `json:"result"`
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func jsonHandler(body string, hdr map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		fmt.Fprint(w, body)
	}
}

func TestGetJSONDecodesAndReadsCacheHeaders(t *testing.T) {
	t.Parallel()
	var gotAccept, gotAuth string
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		gotAccept, gotAuth = r.Header.Get("Accept"), r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Date", "Fri, 30 May 2025 10:00:00 GMT")
		w.Header().Set("Expires", "Fri, 30 May 2025 10:05:00 GMT")
		fmt.Fprint(w, "{\"result\": [\n {\"run\": 392671, \"stream\": \"Express\", \"new_field\": [1,2]}\n,{\"run\": 392672, \"stream\": \"Calibration\"}\n]}\n")
	})
	c := New(Options{Token: func() (string, error) { return "tok", nil }})
	var s sample
	meta, err := c.GetJSON(context.Background(), url, &s)
	if err != nil {
		t.Fatal(err)
	}
	if gotAccept != "application/json" || gotAuth != "Bearer tok" {
		t.Errorf("headers: Accept %q, Authorization %q", gotAccept, gotAuth)
	}
	if len(s.Result) != 2 || s.Result[1].Run != 392672 || s.Result[0].Stream != "Express" {
		t.Errorf("decoded %+v", s)
	}
	if meta.Status != 200 || meta.MaxAge != 5*time.Minute {
		t.Errorf("meta %+v, want status 200 and max age 5m", meta)
	}
}

func TestCacheControlMaxAgeWinsAndNoStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cc   string
		want time.Duration
	}{{"public, max-age=120", 2 * time.Minute}, {"no-store", 0}, {"", 5 * time.Minute}} {
		h := http.Header{}
		h.Set("Date", "Fri, 30 May 2025 10:00:00 GMT")
		h.Set("Expires", "Fri, 30 May 2025 10:05:00 GMT")
		h.Set("Cache-Control", tc.cc)
		if _, _, got := cacheInfo(h); got != tc.want {
			t.Errorf("Cache-Control %q: max age %v, want %v", tc.cc, got, tc.want)
		}
	}
}

func TestFailuresAreClassified(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		h         http.HandlerFunc
		kind      Kind
		retryable bool
		mention   string
	}{
		{"5xx", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error": "database unavailable"}`, http.StatusServiceUnavailable)
		}, KindStatus, true, "database unavailable"},
		{"429", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		}, KindStatus, true, "HTTP 429"},
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, KindStatus, false, "HTTP 404"},
		{"html error page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html><head><title>502 Proxy Error</title></head><body>...</body></html>")
		}, KindStatus, true, "answered HTML, not JSON"},
		{"html login page on 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!DOCTYPE html><html><title>CERN Single Sign-On</title></html>")
		}, KindHTML, false, "CERN Single Sign-On"},
		{"text plain", jsonHandler("", map[string]string{"Content-Type": "text/plain"}), KindContentType, false, "not JSON"},
		{"truncated", jsonHandler(`{"result": [{"run": 1`, nil), KindDecode, false, "truncated"},
		{"wrong type", jsonHandler(`{"result": [{"run": "392671"}]}`, nil), KindDecode, false, "result.run"},
		{"trailing garbage", jsonHandler(`{"result": []} {"x"`, nil), KindDecode, false, "trailing"},
		{"empty", jsonHandler("", nil), KindDecode, false, "empty body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := serve(t, tc.h)
			var s sample
			_, err := New(Options{}).GetJSON(context.Background(), url, &s)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *httpx.Error", err)
			}
			if fe.Kind != tc.kind || Retryable(err) != tc.retryable {
				t.Errorf("kind %s retryable %v, want %s %v (%v)", fe.Kind, Retryable(err), tc.kind, tc.retryable, err)
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), url) {
				t.Errorf("error %q should mention %q and the URL", err, tc.mention)
			}
		})
	}
}

func TestRetryAfterIsKept(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	_, err := New(Options{}).GetJSON(context.Background(), url, &sample{})
	if RetryAfter(err) != 7*time.Second {
		t.Errorf("RetryAfter = %v, want 7s (%v)", RetryAfter(err), err)
	}
}

// hugeBody streams n bytes of a valid-looking JSON array without ever holding them in memory.
func hugeBody(n int64, declare bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if declare {
			w.Header().Set("Content-Length", fmt.Sprint(n))
		}
		chunk := []byte(strings.Repeat("1,", 32<<10))
		w.Write([]byte("["))
		for sent := int64(1); sent < n; sent += int64(len(chunk)) {
			if _, err := w.Write(chunk); err != nil {
				return // the client hung up, as it should
			}
		}
	}
}

func TestHundredMegabyteBodyIsRefused(t *testing.T) {
	t.Parallel()
	for _, declare := range []bool{true, false} {
		url := serve(t, hugeBody(100<<20, declare))
		var v []int
		_, err := New(Options{MaxBytes: 1 << 20}).GetJSON(context.Background(), url, &v)
		var fe *Error
		if !errors.As(err, &fe) || fe.Kind != KindTooLarge || Retryable(err) {
			t.Fatalf("declared length %v: got %v, want a permanent too-large error", declare, err)
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("error %v does not wrap ErrTooLarge", err)
		}
	}
}

func TestDefaultLimitRefusesDeclaredHugeBody(t *testing.T) {
	t.Parallel()
	url := serve(t, hugeBody(100<<20, true))
	_, err := New(Options{}).GetJSON(context.Background(), url, &[]int{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(DefaultMaxBytes)) {
		t.Errorf("got %v, want refusal against the default limit", err)
	}
}

func TestHangingServerTimesOutRetryably(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	_, err := New(Options{Timeout: 50 * time.Millisecond}).GetJSON(context.Background(), url, &sample{})
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindTimeout || !Retryable(err) {
		t.Fatalf("got %v, want a retryable timeout", err)
	}
}

func TestCallerCancelIsNotRetryable(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	_, err := New(Options{}).GetJSON(ctx, url, &sample{})
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindCanceled || Retryable(err) {
		t.Fatalf("got %v, want a permanent cancellation", err)
	}
}

func TestSourceDownIsRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = New(Options{}).GetJSON(context.Background(), "http://"+addr+"/x", &sample{})
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindNetwork || !Retryable(err) {
		t.Fatalf("got %v, want a retryable network error", err)
	}
}

func TestTokenFailureIsReported(t *testing.T) {
	t.Parallel()
	url := serve(t, jsonHandler(`{}`, nil))
	c := New(Options{Token: func() (string, error) { return "", errors.New("sso down") }})
	_, err := c.GetJSON(context.Background(), url, &sample{})
	if err == nil || !strings.Contains(err.Error(), "sso down") {
		t.Errorf("got %v, want the token error", err)
	}
}

func TestRetryableHelpers(t *testing.T) {
	t.Parallel()
	if Retryable(nil) || Retryable(errors.New("x")) || Retryable(context.Canceled) {
		t.Error("plain errors, nil and cancellation must not be retryable")
	}
	if !Retryable(fmt.Errorf("poll: %w", context.DeadlineExceeded)) {
		t.Error("a passed deadline is retryable")
	}
	if !Retryable(fmt.Errorf("ctx: %w", MarkRetryable(errors.New("db locked")))) {
		t.Error("MarkRetryable must survive wrapping")
	}
}
