//go:build unix

package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/sim"
	"github.com/cms-pcl/spyagency/internal/store/postgres"

	yaml "go.yaml.in/yaml/v3"
)

// worldClock is the simulator's time. It runs as a clock.Scaled whose epoch and wall start the agency
// is given (config clock.*), so that both processes compute the same simulated time from the wall
// clock; and it can be frozen, so that the world stops changing while the agency is restarted.
type worldClock struct {
	mu     sync.Mutex
	scaled *clock.Scaled
	frozen time.Time // non-zero: time stands still here
}

func (c *worldClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen
	}
	return c.scaled.Now()
}

func (c *worldClock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return stillTimer{}
	}
	return c.scaled.NewTimer(d)
}

// start lets time run from where it stands, speed times the wall clock.
func (c *worldClock) start(speed float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scaled = clock.NewScaled(c.frozen, speed)
	c.frozen = time.Time{}
}

// freeze stops time at the scaled clock's present; thaw lets it go on as if it had never stopped (it
// jumps to the scaled time, which the agency's clock shares).
func (c *worldClock) freeze() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = c.scaled.Now()
	return c.frozen
}

func (c *worldClock) thaw() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = time.Time{}
}

// stillTimer never fires: time does not move.
type stillTimer struct{}

func (stillTimer) C() <-chan time.Time { return nil }
func (stillTimer) Stop() bool          { return true }

// world is the seeded simulated CMS, served on loopback from the test process.
type world struct {
	sim    *sim.Sim
	clk    *worldClock
	url    string
	agency *sim.AgencyAt // the pull API of whichever child is up

	stopRun context.CancelFunc
	runDone chan error
}

// newWorld builds the simulator of seed and runs it, without any agency, up to preroll after its start:
// the first agency then finds a day's history to take in, which is when a crash hurts most.
func newWorld(t *testing.T, dir string, seed uint64, preroll time.Duration) *world {
	t.Helper()
	clk := &worldClock{frozen: sim.DefaultStart.Add(preroll)}
	w := &world{clk: clk, agency: &sim.AgencyAt{}}
	s, err := sim.New(sim.Config{Seed: seed, Dir: filepath.Join(dir, "cms"), Faults: "default", Clock: clk,
		Tier0Mode: sim.Tier0Agency, Agency: w.agency})
	if err != nil {
		t.Fatal(err)
	}
	w.sim = s
	if err := s.AdvanceTo(clk.Now()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.url = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		w.stopWorld()
		srv.Close()
		s.Close()
	})
	return w
}

// run lets simulated time go at speed and runs Tier-0's feeder cycles on it.
func (w *world) run(speed float64) {
	w.clk.start(speed)
	ctx, cancel := context.WithCancel(context.Background())
	w.stopRun, w.runDone = cancel, make(chan error, 1)
	go func() { w.runDone <- w.sim.Run(ctx) }()
}

func (w *world) stopWorld() {
	if w.stopRun != nil {
		w.stopRun()
		<-w.runDone
		w.stopRun = nil
	}
}

// freezeHealthy stops the world at a moment when none of its HTTP sources is in a fault window. A source
// frozen in an outage would stay down for good, and the agency restarted on it would then know less than
// before (a failed first poll) for a reason that has nothing to do with the restart.
func (w *world) freezeHealthy(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		at := w.clk.freeze()
		down := w.faultySources()
		if len(down) == 0 {
			w.stopWorld()
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("the world's sources %v stayed in fault windows for %s", down, within)
		}
		w.clk.thaw()
		time.Sleep(200 * time.Millisecond)
	}
}

// faultySources asks each HTTP source of the simulator once: an outage answers 503 or an HTML page,
// garbage answers JSON that does not parse.
func (w *world) faultySources() []string {
	probes := map[string]string{
		"oms":     "/agg/api/v1/runs?page[limit]=1",
		"tier0":   "/t0wmadatasvc/prod/hello",
		"dropbox": "/logs/dropBox/uploadLog?limit=1",
		"dqm":     "/dqm/offline/data/json/samples?match=Express&run=1",
	}
	var down []string
	for name, path := range probes {
		resp, err := api.Get(w.url + path)
		if err != nil {
			down = append(down, name)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode == http.StatusServiceUnavailable || strings.Contains(ct, "html") ||
			(resp.StatusCode == http.StatusOK && !json.Valid(body)) {
			down = append(down, name)
		}
	}
	return down
}

// agencyClock is the clock block of a serve configuration.
type agencyClock struct {
	speed            float64
	epoch, wallStart time.Time
}

// now is the simulated time the agency with this clock reads at this instant.
func (c agencyClock) now() time.Time {
	return clock.NewScaledAt(c.epoch, c.wallStart, c.speed).Now()
}

// writeConfig writes a serve configuration: the simulator's sources (internal/sim's ServeConfig) with poll
// deadlines worth 3 s of real time, the given clock, the store, and the webhook push target.
func writeConfig(t *testing.T, path string, w *world, clk agencyClock, dataDir, dsn, hookURL, secretFile string) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(w.sim.ServeConfig(w.url), &doc); err != nil {
		t.Fatal(err)
	}
	// Poll deadlines are real durations whatever the clock (issue 10): the simulator's configuration
	// keeps the default ones.
	if _, ok := doc["sources"].(map[string]any); !ok {
		t.Fatalf("the simulator's serve configuration has no sources: %v", doc)
	}
	doc["data_dir"] = dataDir
	doc["store"] = map[string]any{"dsn": dsn}
	if postgres.IsDSN(dsn) {
		// Each child is a new replica; the one killed before it never released the lease. The shortest
		// TTL the configuration allows keeps the suite's waits as they are on SQLite.
		doc["agency"] = map[string]any{"lease_ttl": "1s"}
	}
	doc["server"] = map[string]any{"addr": "127.0.0.1:0", "shutdown_timeout": "5s"}
	doc["clock"] = map[string]any{"speed": clk.speed, "epoch": clk.epoch.UTC().Format(time.RFC3339Nano),
		"wall_start": clk.wallStart.UTC().Format(time.RFC3339Nano)}
	doc["steering"] = map[string]any{"targets": []any{map[string]any{
		"name": "tier0-hook", "type": "webhook", "url": hookURL, "secret_file": secretFile}}}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(path, out); err != nil {
		t.Fatalf("the crash suite's configuration is refused: %v\n%s", err, out)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func describeClock(c agencyClock) string {
	return fmt.Sprintf("%g× from %s", c.speed, c.epoch.UTC().Format("Jan 2 15:04:05"))
}
