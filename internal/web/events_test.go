package web

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

type sseEvent struct{ id, event, data string }

// openStream connects to /events and delivers its events on a channel, closed when the stream ends.
func openStream(t testing.TB, ctx context.Context, url, lastID string) <-chan sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 256)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.event != "" || e.data != "" {
					out <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.data = line[6:]
			}
		}
	}()
	return out
}

// next returns the next event of the kind, skipping others (ticks), or fails after d.
func next(t testing.TB, ch <-chan sseEvent, kind string, d time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended while waiting for a %s event", kind)
			}
			if e.event == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within %s", kind, d)
		}
	}
}

func TestEventsStreamLiveReplayAndShutdown(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.seed()
	hs, srv := w.serve(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	stream := openStream(t, ctx, hs.URL, "")
	next(t, stream, "tick", 5*time.Second)

	// SiPixelAli of run 392680 is sent to the dropBox: the page learns it at once.
	w.at(time.Minute, w.flow(runUploading, "SiPixelAli", worldNow.Add(-8*time.Hour), pcl.StateUploading)[1])
	e := next(t, stream, "run", 5*time.Second)
	var row liveRow
	if err := json.Unmarshal([]byte(e.data), &row); err != nil {
		t.Fatalf("event data %q: %v", e.data, err)
	}
	var cell *boardCell
	for i := range row.Cells {
		if row.Cells[i].Name == "SiPixelAli" {
			cell = &row.Cells[i]
		}
	}
	if row.Run != runUploading || cell == nil || cell.State != pcl.StateUploading || cell.Symbol != "↑" || !strings.Contains(cell.Label, "uploading") || row.Now.IsZero() {
		t.Fatalf("live row %+v", row)
	}
	// The stream outlives the server's 2 s write timeout: ticks keep coming.
	for time.Since(start) < 2500*time.Millisecond {
		next(t, stream, "tick", 2*time.Second)
	}

	// A browser that reconnects with the id of that event gets what came after it, and only that.
	w.at(2*time.Minute, w.flow(runUploading, "SiPixelAli", worldNow.Add(-8*time.Hour), pcl.StateUploadFailed)[2:]...)
	later := next(t, stream, "run", 5*time.Second)
	replay := openStream(t, ctx, hs.URL, e.id)
	if got := next(t, replay, "run", 5*time.Second); got.id != later.id || got.data != later.data {
		t.Errorf("replay gave %s, want %s", got.id, later.id)
	}
	// An id from another process (a restart) cannot be replayed: the page is told to reload.
	stale := openStream(t, ctx, hs.URL, "otherprocess-7")
	next(t, stale, "resync", 5*time.Second)

	// Shutdown ends every stream at once instead of holding the server's graceful shutdown.
	srv.Close()
	for _, ch := range []<-chan sseEvent{stream, replay, stale} {
		timeout := time.After(5 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-timeout:
				t.Fatal("a stream stayed open after Close")
			}
		}
	}
	if code, _, _ := fetch(t, hs.URL+"/events"); code != http.StatusServiceUnavailable {
		t.Errorf("a new stream after Close: %d", code)
	}
}

func TestEventsClientGoneLeavesHub(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.seed()
	hs, srv := w.serve(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	stream := openStream(t, ctx, hs.URL, "")
	next(t, stream, "tick", 5*time.Second)
	clients := func() int {
		srv.hub.mu.Lock()
		defer srv.hub.mu.Unlock()
		return len(srv.hub.clients)
	}
	if clients() != 1 {
		t.Fatalf("%d clients", clients())
	}
	cancel()
	for deadline := time.Now().Add(5 * time.Second); clients() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a disconnected client stays in the hub")
		}
	}
}

func TestSlowClientIsDisconnected(t *testing.T) {
	t.Parallel()
	h := newHub(nil, nil, nil)
	c := h.join()
	for i := 0; i < clientBuffer+1; i++ {
		h.broadcast("run", []byte(`{}`))
	}
	select {
	case <-c.kick:
	default:
		t.Fatal("a client whose queue is full was not told to go")
	}
	// It can come back with its last id and get everything from the ring.
	if missed, ok := h.missed(h.id(1)); !ok || len(missed) != clientBuffer {
		t.Errorf("replay after id 1: %d frames, ok %v", len(missed), ok)
	}
	for i := 0; i < replaySize; i++ {
		h.broadcast("run", []byte(`{}`))
	}
	if _, ok := h.missed(h.id(1)); ok {
		t.Error("an id older than the ring was said to be replayable")
	}
}
