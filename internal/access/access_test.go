package access

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
)

type memSettings struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memSettings) Setting(_ context.Context, k string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memSettings) SetSetting(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := &memSettings{m: map[string]string{}}
	op, err := Create(ctx, s, "calib-shifter", ScopeOperate, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := Create(ctx, s, "dashboard", ScopeRead, now, 0)
	for k, v := range s.m {
		if strings.Contains(k, op) || strings.Contains(v, op) {
			t.Fatal("the token itself was stored")
		}
	}
	check := Operator(s, func() time.Time { return now }, false)
	req := func(token string) (string, error) {
		r := httptest.NewRequest("POST", "/api/v1/runs/1/override", nil)
		r.RemoteAddr = "192.0.2.7:4000"
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return check(r)
	}
	if who, err := req(op); err != nil || who != "calib-shifter" {
		t.Errorf("operate token: %q %v", who, err)
	}
	if _, err := req(reader); !apperr.Is(err, apperr.Forbidden) {
		t.Errorf("read token acting: %v", err)
	}
	if _, err := req(""); !apperr.Is(err, apperr.Unauthorized) {
		t.Errorf("no token: %v", err)
	}
	if _, err := req("sa_forged"); !apperr.Is(err, apperr.Unauthorized) {
		t.Errorf("unknown token: %v", err)
	}
	later := Operator(s, func() time.Time { return now.Add(25 * time.Hour) }, false)
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Authorization", "Bearer "+op)
	if _, err := later(r); !apperr.Is(err, apperr.Unauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	if _, err := Create(ctx, s, "bad name!", ScopeRead, now, 0); err == nil {
		t.Error("bad name accepted")
	}
	if _, err := Create(ctx, s, "x", "admin", now, 0); err == nil {
		t.Error("bad scope accepted")
	}
}

func TestLoopbackOpenOnlyInDemo(t *testing.T) {
	t.Parallel()
	s := &memSettings{m: map[string]string{}}
	now := func() time.Time { return time.Now() }
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	if who, err := Operator(s, now, true)(r); err != nil || !strings.Contains(who, "loopback") {
		t.Errorf("demo loopback: %q %v", who, err)
	}
	if _, err := Operator(s, now, false)(r); err == nil {
		t.Error("loopback opened outside the demo")
	}
	for name, h := range map[string][2]string{"Sec-Fetch-Site": {"cross-site", ""}, "Origin": {"http://evil.example", ""}} {
		x := httptest.NewRequest("POST", "http://127.0.0.1:8080/api/v1/runs/1/override", nil)
		x.RemoteAddr = "127.0.0.1:5000"
		x.Header.Set(name, h[0])
		if _, err := Operator(s, now, true)(x); err == nil {
			t.Errorf("a request with %s: %s acted through the demo's loopback access", name, h[0])
		}
	}
	same := httptest.NewRequest("POST", "http://127.0.0.1:8080/api/v1/runs/1/override", nil)
	same.RemoteAddr = "127.0.0.1:5000"
	same.Header.Set("Origin", "http://127.0.0.1:8080")
	same.Header.Set("Sec-Fetch-Site", "same-origin")
	if _, err := Operator(s, now, true)(same); err != nil {
		t.Errorf("the demo's own page was refused: %v", err)
	}
	r.RemoteAddr = "198.51.100.4:5000"
	if _, err := Operator(s, now, true)(r); err == nil {
		t.Error("a remote client acted in the demo")
	}
}
