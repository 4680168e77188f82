package httpx

import (
	"context"
	"io"
	"net/http"
	"testing"
)

// TestHandlerTransport: a request through HandlerTransport reaches the handler as a server receives one
// from a loopback client (its URI, host, a loopback address, a body), and the handler's answer comes
// back whole; a cancelled request is not served.
func TestHandlerTransport(t *testing.T) {
	t.Parallel()
	var seen *http.Request
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		seen = r
		rw.Header().Set("X-Test", "yes")
		rw.WriteHeader(http.StatusTeapot)
		io.WriteString(rw, "short and stout")
	})
	c := &http.Client{Transport: HandlerTransport(h)}
	resp, err := c.Get("http://sim.invalid/agg/api/v1/runs?page%5Blimit%5D=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Test") != "yes" || string(body) != "short and stout" {
		t.Errorf("answer %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if seen.RequestURI != "/agg/api/v1/runs?page%5Blimit%5D=1" || seen.Host != "sim.invalid" || seen.RemoteAddr != "127.0.0.1:1" || seen.Body == nil {
		t.Errorf("request as served: URI %q host %q remote %q", seen.RequestURI, seen.Host, seen.RemoteAddr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://sim.invalid/", nil)
	seen = nil
	if _, err := c.Do(req); err == nil || seen != nil {
		t.Errorf("a cancelled request: %v, served %v", err, seen != nil)
	}
}
