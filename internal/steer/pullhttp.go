package steer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/t0envelope"
)

// StateSource reads one consistent snapshot of what in-order release depends on up to upTo (0: every
// run): every run that is not a persisted release, every run in [from, upTo] (from 0: no range), and the
// highest known run. A snapshot, because in-order release makes a run's readiness depend on every run
// before it: states read piecewise while decisions are being written could mix an old state of a blocker
// with a new state of the runs behind it. Released runs outside the range are left out: a persisted
// release is releasable whatever the policy, so it blocks nothing, and the read does not grow with the
// released history.
type StateSource interface {
	Snapshot(ctx context.Context, from, upTo uint32) (store.ReleaseView, error)
}

// StoreSource reads snapshots from a store's ReleaseView, one read transaction per request.
type StoreSource struct {
	Store store.Store
}

// Snapshot reads the open work up to upTo and the range [from, upTo] in one consistent read.
func (s StoreSource) Snapshot(ctx context.Context, from, upTo uint32) (store.ReleaseView, error) {
	v, err := s.Store.ReleaseView(ctx, store.ReleaseQuery{From: from, UpTo: upTo})
	if err != nil {
		return v, fmt.Errorf("read run states: %w", err)
	}
	return v, nil
}

// runParam is how Tier-0's Data Service writes a run number.
var runParam = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)

// PullHandlers serves Tier-0's pull API from src under policy:
//
//	GET /t0/v1/ready_runs?from=&to=  → {"result": [{"run", "ready", "state", "version", "decided"}, ...]}
//	GET /t0/v1/first_unready_run     → {"result": [N]}
//
// Both read one snapshot per request: the open work and the range asked for, never the whole history. Replies use Tier-0's chunked layout (one element per line) and are
// never cached: a stale "ready" is exactly what must not happen. Errors are {"error", "code"}.
func PullHandlers(src StateSource, policy pcl.Policy) (readyRuns, firstUnready http.HandlerFunc) {
	return PullHandlersLog(src, policy, slog.New(slog.DiscardHandler))
}

// PullHandlersLog is PullHandlers with a logger for the internal errors that clients see only blandly.
func PullHandlersLog(src StateSource, policy pcl.Policy, log *slog.Logger) (readyRuns, firstUnready http.HandlerFunc) {
	readyRuns = func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		from, to, err := parseRange(r.URL.Query())
		if err != nil {
			writeError(w, log, err)
			return
		}
		// Every run of the range is listed, released or not; from omitted is the first run.
		v, err := src.Snapshot(r.Context(), max(from, 1), to)
		if err != nil {
			writeError(w, log, fmt.Errorf("ready_runs: %w", err))
			return
		}
		writeResult(w, log, ReadyRuns(v.Runs, from, to, policy))
	}
	firstUnready = func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		if err := onlyParams(r.URL.Query()); err != nil {
			writeError(w, log, err)
			return
		}
		v, err := src.Snapshot(r.Context(), 0, 0)
		if err != nil {
			writeError(w, log, fmt.Errorf("first_unready_run: %w", err))
			return
		}
		writeResult(w, log, []uint32{FirstUnreadyIn(v, policy)})
	}
	return readyRuns, firstUnready
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeJSONError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET", "method_not_allowed")
	return false
}

// onlyParams refuses any query parameter not named: a misspelt "form=" must not silently mean "all runs".
func onlyParams(q url.Values, names ...string) error {
	for k := range q {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known {
			return apperr.Errorf(apperr.Invalid, "unknown query parameter %q (known: %v)", k, names)
		}
	}
	return nil
}

// parseRange reads from= and to=, both optional run numbers, from ≤ to.
func parseRange(q url.Values) (from, to uint32, err error) {
	if err := onlyParams(q, "from", "to"); err != nil {
		return 0, 0, err
	}
	get := func(name string) (uint32, error) {
		vs, ok := q[name]
		if !ok {
			return 0, nil
		}
		if len(vs) != 1 {
			return 0, apperr.Errorf(apperr.Invalid, "query parameter %s given %d times; give it once", name, len(vs))
		}
		if !runParam.MatchString(vs[0]) {
			return 0, apperr.Errorf(apperr.Invalid, "query parameter %s=%q is not a run number", name, vs[0])
		}
		n, err := strconv.ParseUint(vs[0], 10, 32)
		if err != nil {
			return 0, apperr.Errorf(apperr.Invalid, "query parameter %s=%q is out of range for a run number", name, vs[0])
		}
		return uint32(n), nil
	}
	if from, err = get("from"); err != nil {
		return 0, 0, err
	}
	if to, err = get("to"); err != nil {
		return 0, 0, err
	}
	if to != 0 && from > to {
		return 0, 0, apperr.Errorf(apperr.Invalid, "from=%d is above to=%d", from, to)
	}
	return from, to, nil
}

// writeResult answers in Tier-0's own envelope (internal/t0envelope), never cached.
func writeResult[T any](w http.ResponseWriter, log *slog.Logger, elems []T) {
	w.Header().Set("Cache-Control", "no-store")
	if err := t0envelope.Write(w, elems); err != nil {
		writeError(w, log, fmt.Errorf("encode the reply: %w", err))
	}
}

func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	code := apperr.CodeOf(err)
	msg := err.Error()
	if code == apperr.Internal {
		log.Error("steer: pull request failed", "err", err)
		msg = "internal error; see the server log"
	}
	writeJSONError(w, apperr.HTTPStatus(code), msg, string(code))
}

func writeJSONError(w http.ResponseWriter, status int, msg, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
}
