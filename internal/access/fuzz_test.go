package access

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzCredentials: whatever a client puts in its Authorization header and session cookie, the guard
// never panics, and never finds a principal in what it did not make: the answer is anonymous (nothing
// presented) or an error.
func FuzzCredentials(f *testing.F) {
	for _, seed := range [][2]string{
		{"Bearer sa_" + strings.Repeat("A", 43), ""},
		{"bearer sa_x", ""},
		{"Basic dXNlcjpwYXNz", ""},
		{"", "AAAA.BBBB"},
		{"", strings.Repeat("A", 43) + "." + strings.Repeat("B", 43)},
		{"Bearer", "."},
		{"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	st := openStoreF(f)
	s, err := NewSessions(f.Context(), st, time.Hour, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	g := &Guard{Tokens: &Tokens{Store: st, Now: time.Now}, Sessions: s}
	f.Fuzz(func(t *testing.T, authz, cookie string) {
		r := httptest.NewRequest("GET", "/", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if cookie != "" {
			r.Header.Set("Cookie", SessionCookie+"="+cookie)
		}
		p, err := g.Authenticate(r)
		if err == nil && !p.IsAnonymous() {
			t.Fatalf("Authorization %q, cookie %q: principal %+v from nothing this server made", authz, cookie, p)
		}
	})
}

// FuzzSafeNext: a login returns to a path on this server, whatever it was asked.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/runs/1", "//evil", "/\\evil", "https://evil", "javascript:x", "/%2F%2Fevil", "/\t/evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := SafeNext(next)
		u, err := url.Parse(got)
		if err != nil || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || u.Host != "" || u.Scheme != "" || strings.ContainsAny(got, "\\\r\n\t") {
			t.Fatalf("SafeNext(%q) = %q", next, got)
		}
		// What a browser makes of it: the same origin.
		base, _ := url.Parse("https://spyagency.example/x")
		if ref, err := base.Parse(got); err != nil || ref.Host != base.Host {
			t.Fatalf("SafeNext(%q) = %q leads to %v", next, got, ref)
		}
	})
}
