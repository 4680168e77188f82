package steer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// FuzzReadyRunsQuery: whatever the query string, the handler answers JSON, 200 only for a valid range,
// and never lists a run outside it.
func FuzzReadyRunsQuery(f *testing.F) {
	for _, q := range []string{"", "from=100&to=102", "from=abc", "to=-1", "from=5&from=6", "form=1", "to=4294967296", "from=%zz"} {
		f.Add(q)
	}
	states := []pcl.RunState{ready(100), waiting(101), ready(102), ready(4294967295)}
	readyRuns, _ := PullHandlers(sourceFunc(func(context.Context, uint32) ([]pcl.RunState, error) { return states, nil }), testPolicy())
	f.Fuzz(func(t *testing.T, q string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/t0/v1/ready_runs", nil)
		req.URL.RawQuery = q
		readyRuns(rec, req)
		var env struct {
			Result []ReadyRun `json:"result"`
			Error  string     `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Fatalf("query %q: reply is not JSON: %q", q, rec.Body.String())
		}
		if rec.Code != http.StatusOK {
			if env.Error == "" {
				t.Fatalf("query %q: %d without an error message", q, rec.Code)
			}
			return
		}
		from, to, err := parseRange(mustQuery(q))
		if err != nil {
			t.Fatalf("query %q answered 200 but parseRange says %v", q, err)
		}
		for _, r := range env.Result {
			if r.Run < from || (to != 0 && r.Run > to) {
				t.Fatalf("query %q: run %d outside [%d, %d]", q, r.Run, from, to)
			}
		}
	})
}

func mustQuery(q string) url.Values {
	v, _ := url.ParseQuery(q)
	return v
}

// FuzzVerifySignature: no header but the right one verifies, and nothing panics.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte("key"), []byte(`{"run":1}`), "sha256=00")
	f.Add([]byte(""), []byte(""), "")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		good := Sign(secret, body)
		if len(secret) > 0 && !VerifySignature(secret, body, good) {
			t.Fatalf("own signature %s does not verify", good)
		}
		if VerifySignature(secret, body, header) && len(secret) == 0 {
			t.Fatal("verified with an empty secret")
		}
	})
}
