package sim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
)

// One world of three simulated days, fixed Tier-0 mode, no faults, shared by the read-only tests: building
// it costs seconds, reading it nothing.
const sharedSeed = 42

var shared struct {
	once sync.Once
	dir  string
	sim  *Sim
	srv  *httptest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Close()
	}
	if shared.sim != nil {
		shared.sim.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// sharedWorld returns the shared simulator, advanced to three days after its start, and a server of it.
// Its clock stands at the end of those days, so requests do not move the world.
func sharedWorld(t *testing.T) (*Sim, *httptest.Server) {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "sim-shared-")
		if shared.err != nil {
			return
		}
		end := DefaultStart.Add(72 * time.Hour)
		shared.sim, shared.err = New(Config{Seed: sharedSeed, Dir: shared.dir, Clock: clock.NewFake(end)})
		if shared.err != nil {
			return
		}
		if shared.err = shared.sim.AdvanceTo(end); shared.err != nil {
			return
		}
		shared.srv = httptest.NewServer(shared.sim.Handler())
	})
	if shared.err != nil {
		t.Fatalf("shared world: %v", shared.err)
	}
	return shared.sim, shared.srv
}

// get fetches a URL and returns status, headers and body.
func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// stoppedRuns are the runs of the shared world that stopped by its end.
func stoppedRuns(s *Sim) []RunTruth {
	var out []RunTruth
	for _, r := range s.Runs() {
		if !r.Stop.After(s.Now()) {
			out = append(out, r)
		}
	}
	return out
}
