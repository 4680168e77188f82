package alert

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// A test world: run 400123 of Collisions26 stopped at t0.
const testRun = 400123

var t0 = time.Date(2026, 5, 4, 6, 0, 0, 0, time.UTC)

// runState is a stopped run, decided, with the workflows given.
func runState(run uint32, readiness pcl.Readiness, decided time.Time, wss ...pcl.WorkflowStatus) pcl.RunState {
	stop := t0
	rs := pcl.RunState{Run: run, Class: "Collisions26", Info: &pcl.RunInfo{Start: t0.Add(-4 * time.Hour), Stop: &stop, Class: "Collisions26"},
		Workflows: wss, Decision: pcl.Decision{Run: run, State: readiness, Version: 1, Decided: decided, Blocking: []string{}}}
	for _, ws := range wss {
		if ws.Required && !ws.State.OK(false) {
			rs.Decision.Blocking = append(rs.Decision.Blocking, ws.Name)
		}
	}
	switch readiness {
	case pcl.ReadinessReady, pcl.ReadinessForced, pcl.ReadinessReleased:
		rs.Decision.Releasable = true
	}
	return rs
}

func wf(name string, st pcl.State) pcl.WorkflowStatus {
	return pcl.WorkflowStatus{Name: name, State: st, Required: true, Quality: pcl.QualityUnknown, Flags: []pcl.Flag{},
		Deadline: t0.Add(20 * time.Hour), Updated: t0.Add(time.Hour), Reason: "log text"}
}

// world is what the evaluator looks at, changed by the test.
type world struct {
	mu      sync.Mutex
	runs    []pcl.RunState
	sources []pcl.SourceHealth
	err     error
}

func (w *world) OpenRunStates(context.Context) ([]pcl.RunState, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]pcl.RunState(nil), w.runs...), w.err
}

func (w *world) SourceHealth() []pcl.SourceHealth {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]pcl.SourceHealth(nil), w.sources...)
}

func (w *world) set(runs ...pcl.RunState) {
	w.mu.Lock()
	w.runs = runs
	w.mu.Unlock()
}

func (w *world) setSources(s ...pcl.SourceHealth) {
	w.mu.Lock()
	w.sources = s
	w.mu.Unlock()
}

// recorder is a notifier that keeps what it is told, and fails while told to.
type recorder struct {
	mu       sync.Mutex
	messages []Message
	fail     error
	retry    bool
	attempts int
}

func (r *recorder) Notify(_ context.Context, m Message) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.fail != nil {
		return r.retry, r.fail
	}
	r.messages = append(r.messages, m)
	return false, nil
}

func (r *recorder) failWith(err error, retry bool) {
	r.mu.Lock()
	r.fail, r.retry = err, retry
	r.mu.Unlock()
}

// notices are the (status, fingerprint-ish) pairs told so far: "firing upload-failed run=400123".
func (r *recorder) notices() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.messages {
		for _, n := range m.Alerts {
			s := n.Status + " " + n.Labels["alertname"]
			for _, k := range []string{"run", "workflow", "source", "notifier"} {
				if v := n.Labels[k]; v != "" {
					s += " " + k + "=" + v
				}
			}
			out = append(out, s)
		}
	}
	return out
}

var errDown = errors.New("connection refused")

// rig is an evaluator on a real store and a fake clock.
type rig struct {
	t     *testing.T
	clk   *clock.Fake
	wall  *clock.Fake
	st    *sqlite.Store
	dir   string
	w     *world
	cfg   config.Alerts
	notes []NamedNotifier
	e     *Evaluator
}

func newRig(t *testing.T, notifiers ...NamedNotifier) *rig {
	t.Helper()
	r := &rig{t: t, clk: clock.NewFake(t0), wall: clock.NewFake(t0), dir: t.TempDir(), w: &world{}, notes: notifiers}
	c, err := config.Parse("test.yaml", []byte("alerts: {external_url: \"https://spyagency.example.cern.ch\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r.cfg = c.Alerts
	r.open()
	return r
}

// open (re)opens the store and makes a new evaluator on it: what a restart does.
func (r *rig) open() {
	r.t.Helper()
	if r.st != nil {
		r.st.Close()
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(r.dir, "spy.db"), sqlite.Options{Now: r.clk.Now})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { st.Close() })
	r.st = st
	e, err := New(context.Background(), Options{Store: st, Clock: r.clk, Runs: r.w, Sources: r.w, Config: r.cfg,
		Notifiers: r.notes, Wall: r.wall.Now})
	if err != nil {
		r.t.Fatal(err)
	}
	r.e = e
}

// at moves the clock to t0+d and evaluates.
func (r *rig) at(d time.Duration) {
	r.t.Helper()
	r.clk.Set(t0.Add(d))
	if err := r.e.Evaluate(context.Background()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) active(rule string) []store.Alert {
	var out []store.Alert
	for _, a := range r.e.Active() {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

func named(name string, n Notifier) NamedNotifier {
	return NamedNotifier{Name: name, Kind: "test", Notifier: n, RetryFor: time.Hour}
}
