package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkAccessCheck is what deciding who a request comes from costs, on a cheap route
// (GET /api/v1/version) of the real server over a real SQLite store: nothing presented, an API token
// (a hash and one indexed read; its last use written at most once a minute), a session cookie (an HMAC
// and one indexed read).
func BenchmarkAccessCheck(b *testing.B) {
	aw := newAccessWorld(b)
	_, srv := aw.serve(b, nil)
	for _, name := range []string{"anonymous", "token read", "viewer"} {
		c := aw.cred(name)
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/v1/version", nil)
			req.RemoteAddr = "127.0.0.1:5000"
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if c.cookie != nil {
				req.AddCookie(c.cookie)
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("HTTP %d", rec.Code)
				}
			}
		})
	}
}
