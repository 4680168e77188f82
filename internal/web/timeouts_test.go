package web

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestAClientThatNeverSendsItsBodyIsCut: a client that sends a request's headers and never its body
// (no token needed) loses its connection once the read timeout passes, instead of holding it forever.
func TestAClientThatNeverSendsItsBodyIsCut(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	srv, err := New(Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Overrider: w.ag, Operator: operatorLoopback})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	bound := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- ListenAndServe(ctx, "127.0.0.1:0", srv, time.Second, Timeouts{Read: 300 * time.Millisecond}, func(a net.Addr) { bound <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	})
	addr := (<-bound).String()
	for _, head := range []string{
		// An operator's override whose body never comes: the handler waits in the JSON decoder.
		"POST /api/v1/runs/392680/override HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
		// No token at all: refused at once, and the server still waits for the body to drain.
		"POST /api/v1/runs/392680/override HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nAuthorization: Bearer nope\r\n\r\n",
		// Headers that never end.
		"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		// Far longer than the server's timeout: only a server that never times out reaches it.
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("%q: the server kept the connection open: %v", head, err)
		}
		conn.Close()
	}
}

func TestServerTimeoutsFromTheConfiguration(t *testing.T) {
	t.Parallel()
	s := newHTTPServer(nil, Timeouts{Read: 15 * time.Second, Write: time.Minute})
	if s.ReadTimeout != 15*time.Second || s.WriteTimeout != time.Minute || s.ReadHeaderTimeout != 10*time.Second || s.IdleTimeout != 2*time.Minute {
		t.Errorf("server timeouts read %s, write %s, header %s, idle %s", s.ReadTimeout, s.WriteTimeout, s.ReadHeaderTimeout, s.IdleTimeout)
	}
	if s := newHTTPServer(nil, Timeouts{Read: 2 * time.Second}); s.ReadHeaderTimeout != 2*time.Second {
		t.Errorf("header timeout %s longer than the whole request's", s.ReadHeaderTimeout)
	}
}
