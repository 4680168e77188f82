//go:build unix

package crashtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/cms-pcl/spyagency/internal/steer"
)

// receiver is Tier-0's webhook as docs/tier0-integration.md tells it to behave: it verifies the
// signature before reading the body, de-duplicates by idempotency key and always answers success for a
// key it already has. It keeps every delivery so that the suite can check that none was lost, that a
// redelivered key carried the same payload, and that no key came from nowhere.
type receiver struct {
	secret []byte

	mu   sync.Mutex
	keys map[string]*received
	bad  []string // requests that must never come: bad signature, malformed body, key not matching it
	n    int      // requests answered
}

// received is everything that arrived under one idempotency key.
type received struct {
	body      steer.WebhookBody
	raw       []byte
	count     int
	differing [][]byte // later bodies that were not byte for byte the first one
}

func newReceiver(secret []byte) *receiver {
	return &receiver{secret: secret, keys: map[string]*received{}}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest) // the connection broke: the agency retries
		return
	}
	key := req.Header.Get(steer.HeaderIdempotencyKey)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if !steer.VerifySignature(r.secret, raw, req.Header.Get(steer.HeaderSignature)) {
		r.bad = append(r.bad, fmt.Sprintf("key %q: bad signature %q", key, req.Header.Get(steer.HeaderSignature)))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var body steer.WebhookBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("key %q: body does not decode: %v: %.200s", key, err, raw))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if want := steer.IdempotencyKey(body.Run, body.Version); key != want {
		r.bad = append(r.bad, fmt.Sprintf("key %q on a body of run %d version %d (want key %q)", key, body.Run, body.Version, want))
		http.Error(w, "key does not match the body", http.StatusBadRequest)
		return
	}
	got := r.keys[key]
	if got == nil {
		r.keys[key] = &received{body: body, raw: raw, count: 1}
	} else {
		got.count++
		if !bytes.Equal(got.raw, raw) {
			got.differing = append(got.differing, raw)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// has says whether a key arrived.
func (r *receiver) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[key] != nil
}

// snapshot copies what arrived so far.
func (r *receiver) snapshot() (keys map[string]received, bad []string, requests int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys = make(map[string]received, len(r.keys))
	for k, v := range r.keys {
		keys[k] = *v
	}
	return keys, append([]string(nil), r.bad...), r.n
}
