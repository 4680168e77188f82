package web

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// smallBuffers accepts connections with a small send buffer, so that a client that reads nothing
// fills the path between the handler and itself after a few kilobytes, not megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// serveSlow serves srv on loopback through smallBuffers with the given timeouts.
func serveSlow(t *testing.T, srv *Server, to Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, smallBuffers{ln}, srv, time.Second, to) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// dialStuck sends one GET and then reads nothing, with a small receive buffer.
func dialStuck(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := conn.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// generous bounds what the tests wait for a deadline configured far shorter: only a server that never
// cuts the client reaches it.
const generous = 30 * time.Second

// TestAClientThatReadsNothingReleasesTheHandler: a response larger than the buffers, to a client that
// reads none of it, blocks its handler in Write until the server's write timeout; then the write
// fails and the handler returns, instead of holding its goroutine for as long as the client lives.
func TestAClientThatReadsNothingReleasesTheHandler(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	returned := make(chan error, 1)
	big := []byte(strings.Repeat("spyagency_padding 1\n", 1000))
	// A stand-in for a large response (a scrape of many series): it writes until a write fails.
	endless := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		for {
			if _, err := rw.Write(big); err != nil {
				returned <- err
				return
			}
		}
	})
	srv, err := New(Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Overrider: w.ag, Operator: operatorLoopback, Metrics: endless})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveSlow(t, srv, Timeouts{Write: 300 * time.Millisecond})
	dialStuck(t, addr, "/metrics")
	select {
	case err := <-returned:
		t.Logf("the handler's write failed: %v", err)
	case <-time.After(generous):
		t.Fatal("a client that reads nothing holds the handler past the write timeout")
	}
}

// TestAStreamThatIsNotReadIsCut: the event stream lifts the server's write timeout (it is meant to
// stay open), so each of its writes has its own deadline; a page that stops reading while ticks keep
// coming loses its stream once one write waited that long, and leaves the hub.
func TestAStreamThatIsNotReadIsCut(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	srv, err := New(Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Overrider: w.ag, Operator: operatorLoopback,
		Heartbeat: 100 * time.Microsecond, StreamWriteTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The server's own write timeout is short too: the stream must not be cut by it while read.
	addr := serveSlow(t, srv, Timeouts{Write: 300 * time.Millisecond})
	dialStuck(t, addr, "/events")
	deadline := time.Now().Add(generous)
	for !srv.hub.viewed() { // the stream joins the hub
		if time.Now().After(deadline) {
			t.Fatal("the stream never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for srv.hub.viewed() {
		if time.Now().After(deadline) {
			t.Fatal("a page that reads nothing keeps its stream, and its goroutine, past the stream's write deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAReadStreamOutlivesTheWriteTimeout: a page that reads its stream keeps it past the server's
// write timeout, because the stream sets its own deadline per write.
func TestAReadStreamOutlivesTheWriteTimeout(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	srv, err := New(Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Overrider: w.ag, Operator: operatorLoopback,
		Heartbeat: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveSlow(t, srv, Timeouts{Write: 100 * time.Millisecond})
	resp, err := http.Get("http://" + addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read ticks until well past the write timeout (by counting them, not by a clock): 40 ticks are
	// 800 ms at the heartbeat.
	buf := make([]byte, 4096)
	ticks := 0
	for ticks < 40 {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("the stream ended after %d ticks: %v", ticks, err)
		}
		ticks += strings.Count(string(buf[:n]), "event: tick")
	}
}
