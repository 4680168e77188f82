package steer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// receiver is a webhook receiver that de-duplicates by idempotency key, as the contract asks of Tier-0.
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server

	mu       sync.Mutex
	respond  func(key string) (status int, header http.Header) // nil: 200
	requests []string                                          // every key received, in arrival order
	accepted []string                                          // keys answered 2xx, first time only
	bodies   map[string]WebhookBody
	badSigs  int
}

func newReceiver(t *testing.T, secret []byte) *receiver {
	r := &receiver{t: t, secret: secret, bodies: map[string]WebhookBody{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	key := req.Header.Get(HeaderIdempotencyKey)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, key)
	if !VerifySignature(r.secret, body, req.Header.Get(HeaderSignature)) {
		r.badSigs++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.respond != nil {
		if status, h := r.respond(key); status/100 != 2 {
			for k, vs := range h {
				w.Header()[k] = vs
			}
			http.Error(w, "not now", status)
			return
		}
	}
	if _, dup := r.bodies[key]; !dup {
		var b WebhookBody
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.bodies[key] = b
		r.accepted = append(r.accepted, key)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) setRespond(f func(key string) (int, http.Header)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.respond = f
}

func (r *receiver) snapshot() (requests, accepted []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests), slices.Clone(r.accepted)
}

func count(keys []string, key string) int {
	n := 0
	for _, k := range keys {
		if k == key {
			n++
		}
	}
	return n
}
