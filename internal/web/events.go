package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The live board: one subscription to the agency feeds every connected page through a hub. Each event
// is encoded once and handed to every client; a client that does not keep up is disconnected rather than
// slowing the others, and its browser reconnects with Last-Event-ID and gets what it missed from a
// replay ring (or is told to reload when the ring no longer holds it).

const (
	clientBuffer = 64  // events queued per client before it counts as too slow
	replaySize   = 512 // events kept for clients that reconnect
	sourceBuffer = 1024
	// defaultStreamWriteTimeout: one event must be written within this, or the client is gone.
	defaultStreamWriteTimeout = 20 * time.Second
)

type sseMsg struct {
	seq  uint64
	data []byte // the whole SSE frame: id, event, data lines
	// state: a state event (the header's parts): no id, never replayed, always sent.
	state bool
}

type sseClient struct {
	ch   chan sseMsg
	kick chan struct{} // closed when the client fell behind
	once sync.Once
}

type hub struct {
	src   Events
	clock clock.Clock
	log   *slog.Logger
	epoch string // tells a reconnecting browser whether its Last-Event-ID is from this process

	// watch, when set, keeps the state events current (the header); it runs from the first client until
	// close, and decided tells it a decision changed.
	watch   func(stop <-chan struct{}, decided <-chan struct{})
	decided chan struct{}
	watched sync.WaitGroup

	mu      sync.Mutex
	clients map[*sseClient]bool
	ring    []sseMsg
	seq     uint64
	states  map[string][]byte // state event name → its current frame
	started bool
	cancel  func()
	done    chan struct{}
	closed  bool
}

// stateEvents are the state events, in the order a (re)connecting page gets them.
var stateEvents = []string{"first-unready", "sources", "alerts"}

func newHub(src Events, clk clock.Clock, log *slog.Logger) *hub {
	return &hub{src: src, clock: clk, log: log, clients: map[*sseClient]bool{}, done: make(chan struct{}),
		decided: make(chan struct{}, 1), states: map[string][]byte{}, epoch: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// join adds a client and starts the subscription with the first one; nil once the hub is closed.
func (h *hub) join() *sseClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	c := &sseClient{ch: make(chan sseMsg, clientBuffer), kick: make(chan struct{})}
	h.clients[c] = true
	if !h.started && h.src != nil {
		h.started = true
		ch, cancel := h.src.Subscribe(sourceBuffer)
		h.cancel = cancel
		go h.pump(ch)
		if h.watch != nil {
			h.watched.Go(func() { h.watch(h.done, h.decided) })
		}
	}
	return c
}

func (h *hub) leave(c *sseClient) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// close ends every stream, the subscription and the watch (waiting for it: it reads the store, which
// the caller may close next).
func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.done)
	if h.cancel != nil {
		h.cancel()
	}
	h.mu.Unlock()
	h.watched.Wait()
}

// pump turns agency events into SSE frames until the subscription ends. The subscription lives as long
// as the hub so that the replay ring has no gap while no page happens to be open.
func (h *hub) pump(ch <-chan pcl.RunEvent) {
	for e := range ch {
		body, err := json.Marshal(liveRowOf(e, h.clock.Now()))
		if err != nil {
			h.log.Error("encode live event", "run", e.Run, "err", err)
			continue
		}
		h.broadcast("run", body)
		if e.DecisionChanged {
			select {
			case h.decided <- struct{}{}:
			default: // one pending signal says it all
			}
		}
	}
}

// setState makes body the current value of a state event and sends it to every page, unless it is the
// value they have already.
func (h *hub) setState(event string, body []byte) {
	f := fmt.Appendf(nil, "event: %s\ndata: %s\n\n", event, body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if bytes.Equal(h.states[event], f) {
		return
	}
	h.states[event] = f
	h.send(sseMsg{data: f, state: true})
}

// viewed says whether a page is connected.
func (h *hub) viewed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients) > 0
}

// stateFrames are the current state events, for a page that (re)connects.
func (h *hub) stateFrames() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []byte
	for _, e := range stateEvents {
		out = append(out, h.states[e]...)
	}
	return out
}

func (h *hub) broadcast(event string, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	m := sseMsg{seq: h.seq, data: frame(h.id(h.seq), event, body)}
	if len(h.ring) == replaySize {
		copy(h.ring, h.ring[1:])
		h.ring = h.ring[:replaySize-1]
	}
	h.ring = append(h.ring, m)
	h.send(m)
}

// send queues m for every client, and tells one that cannot take it to go. Called with h.mu held.
func (h *hub) send(m sseMsg) {
	for c := range h.clients {
		select {
		case c.ch <- m:
		default:
			c.once.Do(func() { close(c.kick) })
		}
	}
}

func (h *hub) id(seq uint64) string { return h.epoch + "-" + strconv.FormatUint(seq, 10) }

// position is the id of the newest event, for a page to start its stream from.
func (h *hub) position() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id(h.seq)
}

// missed returns the frames after lastID, and false when they cannot all be given (another process's
// id, or older than the ring): the page must reload.
func (h *hub) missed(lastID string) ([]sseMsg, bool) {
	if lastID == "" {
		return nil, true
	}
	epoch, n, ok := strings.Cut(lastID, "-")
	seq, err := strconv.ParseUint(n, 10, 64)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !ok || err != nil || epoch != h.epoch || seq > h.seq {
		return nil, false
	}
	if seq == h.seq {
		return nil, true
	}
	if len(h.ring) == 0 || h.ring[0].seq > seq+1 {
		return nil, false
	}
	var out []sseMsg
	for _, m := range h.ring {
		if m.seq > seq {
			out = append(out, m)
		}
	}
	return out, true
}

func frame(id, event string, data []byte) []byte {
	// json.Marshal output holds no newline, so one data line carries it.
	return fmt.Appendf(nil, "id: %s\nevent: %s\ndata: %s\n\n", id, event, data)
}

// events serves GET /events: text/event-stream, one "run" event per stored run state, "tick" events
// with the agency's clock as heartbeats, and the header's state events ("first-unready", "sources",
// "alerts") whenever one changes, until the client goes, the server shuts down, or the client falls
// behind.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The server's write timeout would cut a stream that is meant to stay open; each write below sets
	// its own deadline instead.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.Warn("event stream: cannot lift the write deadline", "err", err)
	}
	c := s.hub.join()
	if c == nil {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.hub.leave(c)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy must not buffer the stream
	w.WriteHeader(http.StatusOK)

	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("since")
	}
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.o.StreamWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	hello := fmt.Appendf(nil, "retry: 3000\n\n")
	replay, ok := s.hub.missed(last)
	if !ok {
		hello = append(hello, frame(s.hub.position(), "resync", []byte(`{}`))...)
	}
	hello = append(hello, s.tick()...)
	// The header as it is now: whatever the page missed of it, this replaces. Read after join, so a
	// change after this read also reaches the client's queue, and is sent after it.
	hello = append(hello, s.hub.stateFrames()...)
	for _, m := range replay {
		hello = append(hello, m.data...)
	}
	if !write(hello) {
		return
	}
	seen := uint64(0)
	if len(replay) > 0 {
		seen = replay[len(replay)-1].seq
	}
	beat := time.NewTicker(s.o.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.hub.done:
			return
		case <-c.kick:
			return // too slow: the browser reconnects and replays from its last id
		case m := <-c.ch:
			if !m.state && m.seq <= seen {
				continue // already sent in the replay
			}
			if !write(m.data) {
				return
			}
		case <-beat.C:
			if !write(s.tick()) {
				return
			}
		}
	}
}

// tick carries the agency's clock (simulated in the demo), so the page counts deadlines in its time.
func (s *Server) tick() []byte {
	return fmt.Appendf(nil, "event: tick\ndata: {\"now\":%q}\n\n", s.o.Clock.Now().UTC().Format(time.RFC3339))
}
