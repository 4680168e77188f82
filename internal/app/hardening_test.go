package app

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/config"
)

// startHardened starts a whole App on loopback with short server timeouts and Tier-0's pull API
// behind steer tokens.
func startHardened(t *testing.T) (*App, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.ReadTimeout, cfg.Server.WriteTimeout = 300*time.Millisecond, 2*time.Second
	cfg.Access.Pull = "token"
	a, err := New(t.Context(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, a.Addr().String()
}

// TestSlowClientsAreCut: a client that trickles its headers or its body, a byte at a time, is held
// to the server's timeouts (server.read_timeout) and loses its connection, on the pages and on
// Tier-0's pull API alike; it never holds a connection for as long as it likes.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	_, addr := startHardened(t)
	for _, tc := range []struct{ name, head, trickle string }{
		{"headers a byte at a time", "", "GET /t0/v1/first_unready_run HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 400)},
		{"a body a byte at a time", "POST /api/v1/runs/392680/override HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n", strings.Repeat(" ", 400)},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			io.Copy(io.Discard, conn)
		}()
		if tc.head != "" {
			io.WriteString(conn, tc.head)
		}
		for i := 0; i < len(tc.trickle); i++ {
			if _, err := conn.Write([]byte{tc.trickle[i]}); err != nil {
				break // the server has closed it
			}
			select {
			case <-closed:
				i = len(tc.trickle)
			case <-time.After(20 * time.Millisecond):
			}
		}
		<-closed
		conn.Close()
		// 400 bytes at 20 ms each would take 8 s; the server must cut it near its 300 ms.
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: the server kept the connection %s", tc.name, took)
		}
	}
}

// TestPullAPIHardened: Tier-0's pull API has the security headers of every response, and with
// access.pull: token it answers a steer token only; a garbage token is refused, never taken as
// anonymous.
func TestPullAPIHardened(t *testing.T) {
	t.Parallel()
	a, addr := startHardened(t)
	steer, _, err := a.Tokens.Create(t.Context(), "tier0-prod", access.ScopeSteer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	read, _, _ := a.Tokens.Create(t.Context(), "dashboard", access.ScopeRead, time.Hour)
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"garbage token", "sa_" + strings.Repeat("x", 43), http.StatusUnauthorized},
		{"read token", read, http.StatusForbidden},
		{"steer token", steer, http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/t0/v1/first_unready_run", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: the pull API's answer lacks the security headers: %v", tc.name, resp.Header)
		}
	}
}
