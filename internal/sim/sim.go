package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"

	yaml "go.yaml.in/yaml/v3"
)

// DefaultStart is where simulated time begins when Config.Start is zero: a Monday of the 2026 run.
var DefaultStart = time.Date(2026, 5, 4, 6, 0, 0, 0, time.UTC)

// Config builds a simulator.
type Config struct {
	Seed uint64
	// Dir holds the harvest area (Dir/harvest), the condition DB (Dir/conddb.db) and a staging
	// directory. The simulator owns those names and recreates them.
	Dir string
	// Faults is a profile name: none (default), default, heavy. CustomFaults, when set, wins.
	Faults       string
	CustomFaults *Faults
	Params       *Params // nil: DefaultParams
	// Clock drives the world; nil is the wall clock (only sensible with Start near now).
	Clock clock.Clock
	// Start is the beginning of the simulated world (zero: DefaultStart). The world is empty before it.
	Start     time.Time
	Tier0Mode Tier0Mode // default fixed
	Agency    AgencyClient
	// Tier0Backstop, in agency mode, keeps Tier-0's own fixed delay OR-ed with the agency's answer, as
	// docs/tier0-integration.md asks Tier-0 to run it: a run is locked when the agency says so or when
	// its fixed lock time comes, whichever is first. Without it the fixed delay applies only while the
	// agency cannot be reached.
	Tier0Backstop bool
	Catalogue     *pcl.Catalogue // nil: the built-in catalogue
	Logger        *slog.Logger
}

// Sim is the simulated CMS: the world and its services.
type Sim struct {
	cfg Config
	clk clock.Clock
	log *slog.Logger
	mu  sync.Mutex
	w   *world
	dir string

	askMu sync.Mutex // one question to the agency at a time, so answers arrive in order

	dqm dqmMemo // what the DQM GUI's handlers computed once, under mu
}

// New builds the world and its files. Nothing happens until time advances.
func New(cfg Config) (*Sim, error) {
	p := DefaultParams()
	if cfg.Params != nil {
		p = *cfg.Params
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	f, err := FaultProfile(cfg.Faults)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if cfg.CustomFaults != nil {
		f = *cfg.CustomFaults
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Catalogue == nil {
		cfg.Catalogue = pcl.DefaultCatalogue()
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart
	}
	cfg.Start = cfg.Start.UTC()
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil || cfg.Dir == "" {
		return nil, fmt.Errorf("sim: directory %q: %v", cfg.Dir, err)
	}
	t0, err := newTier0(cfg.Tier0Mode, cfg.Agency, p, cfg.Logger)
	if err != nil {
		return nil, err
	}
	t0.backstop = cfg.Tier0Backstop
	d, err := newDisk(context.Background(), dir, cfg.Catalogue, cfg.Start)
	if err != nil {
		return nil, err
	}
	w := newWorld(p, f, cfg.Seed, cfg.Start, cfg.Catalogue, d, t0, cfg.Logger)
	return &Sim{cfg: cfg, clk: cfg.Clock, log: cfg.Logger, w: w, dir: dir}, nil
}

// Close closes the condition DB. The files stay.
func (s *Sim) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.disk.close()
}

// AdvanceTo runs the world up to t (never backwards). In agency mode Tier-0 asks the agency once
// first, and every feeder cycle up to t acts on that answer. It returns the first I/O error the world
// met, if any; the world goes on regardless.
func (s *Sim) AdvanceTo(t time.Time) error {
	s.askAgency(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.advance(context.Background(), t)
	return s.w.err
}

// askAgency asks the agency for its first unready run, in agency mode, and keeps the answer for the
// feeder cycles to come. It holds no lock of the world while it waits: the agency may be slow to
// answer (its store busy), and meanwhile the simulated services must go on answering its spies,
// which otherwise timed out waiting for the world.
func (s *Sim) askAgency(ctx context.Context) {
	if s.cfg.Tier0Mode != Tier0Agency {
		return
	}
	s.askMu.Lock()
	defer s.askMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second) // real time: an HTTP round trip
	defer cancel()
	n, err := s.cfg.Agency.FirstUnreadyRun(ctx)
	s.mu.Lock()
	s.w.t0.setAnswer(n, err)
	s.mu.Unlock()
}

// sync advances the world to the clock and returns the world's time; callers hold mu.
func (s *Sim) sync() time.Time {
	s.w.advance(context.Background(), s.clk.Now())
	return s.w.now
}

// Run advances the world on the clock's ticks (every feeder cycle) until ctx ends. It returns nil when
// ctx ends, or the first I/O error of the world.
func (s *Sim) Run(ctx context.Context) error {
	for {
		t := s.clk.NewTimer(s.w.p.FeederInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		s.askAgency(ctx)
		s.mu.Lock()
		s.w.advance(ctx, s.clk.Now())
		err := s.w.err
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// Now is the world's time.
func (s *Sim) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.now
}

// Start is the beginning of the world.
func (s *Sim) Start() time.Time { return s.cfg.Start }

// HarvestDir is the harvest area's root.
func (s *Sim) HarvestDir() string { return s.w.disk.harvest }

// CondDBPath is the condition DB file.
func (s *Sim) CondDBPath() string { return s.w.disk.condDB }

// Runs returns the truth of every run started so far, in run order.
func (s *Sim) Runs() []RunTruth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RunTruth, len(s.w.runs))
	for i, r := range s.w.runs {
		out[i] = r.clone()
	}
	return out
}

// Truth returns one run's truth.
func (s *Sim) Truth(n uint32) (RunTruth, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.w.byNum[n]
	if !ok {
		return RunTruth{}, false
	}
	return r.clone(), true
}

// Releases returns the PromptReco releases so far, in order.
func (s *Sim) Releases() []Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Release(nil), s.w.t0.releases...)
}

// FCSR is Tier-0's first condition-safe run now (0 before any run).
func (s *Sim) FCSR() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.t0.fcsr()
}

// Events returns the world's event log up to t, one line per event, as the digest hashes it.
func (s *Sim) Events(until time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.w.events {
		if e.at.After(until) {
			break
		}
		out = append(out, e.at.UTC().Format(time.RFC3339Nano)+" "+e.text)
	}
	return out
}

// Digest is a SHA-256 of the world's events up to until (the world is advanced there first if it is
// behind): two worlds with the same seed, parameters and Tier-0 behaviour give the same digest.
func (s *Sim) Digest(until time.Time) string {
	s.AdvanceTo(until)
	h := sha256.New()
	for _, line := range s.Events(until) {
		h.Write([]byte(line))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ServeConfig is a `serve` configuration (keys of internal/config/REFERENCE.md) pointing every source at
// this simulator served at baseURL.
func (s *Sim) ServeConfig(baseURL string) []byte {
	base := strings.TrimRight(baseURL, "/")
	type src struct {
		URL string `yaml:"url,omitempty"`
		Dir string `yaml:"dir,omitempty"`
		DSN string `yaml:"dsn,omitempty"`
	}
	doc := struct {
		Sources map[string]src `yaml:"sources"`
	}{Sources: map[string]src{
		"oms":     {URL: base + "/agg/api/v1"},
		"tier0":   {URL: base + "/t0wmadatasvc/prod"},
		"dropbox": {URL: base},
		"dqm":     {URL: base + "/dqm/offline"},
		"harvest": {Dir: s.HarvestDir()},
		"conddb":  {DSN: "sqlite:" + s.CondDBPath()},
	}}
	b, err := yaml.Marshal(doc)
	if err != nil { // a struct of strings always marshals
		panic("sim: serve config: " + err.Error())
	}
	return append([]byte("# spyagency serve configuration for the CMS simulator at "+base+"\n"), b...)
}

// Handler serves every simulated service at its real path.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /agg/api/v1/runs", s.source("oms", s.omsRuns))
	mux.HandleFunc("GET /t0wmadatasvc/prod/{endpoint}", s.source("tier0", s.tier0))
	mux.HandleFunc("GET /logs/dropBox/uploadLog", s.source("dropbox", s.uploadLog))
	mux.HandleFunc("GET /dqm/offline/data/json/samples", s.source("dqm", s.dqmSamples))
	mux.HandleFunc("GET /dqm/offline/data/json/archive/{path...}", s.source("dqm", s.dqmArchive))
	mux.HandleFunc("GET /{$}", s.index)
	return mux
}

// source wraps a service: the world catches up with the clock, then a fault window of the source, if
// any, decides the answer before the service does.
func (s *Sim) source(name string, h func(http.ResponseWriter, *http.Request, time.Time)) http.HandlerFunc {
	return func(rw http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		now := s.sync()
		win := s.w.faultAt(name, now)
		slow := s.w.faults.SlowReply
		s.mu.Unlock()
		if win.kind == faultSlow && slow > 0 {
			t := time.NewTimer(slow) // wall time: a slow reply is slow for the reader, whatever the speed
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return
			}
		}
		if writeFault(rw, win) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		h(rw, req, now)
	}
}

func (s *Sim) index(rw http.ResponseWriter, req *http.Request) {
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(rw, `Simulated CMS (seed %d)
  OMS runs          /agg/api/v1/runs
  Tier-0 Data Svc   /t0wmadatasvc/prod/{hello,express_config,reco_config,run_config,firstconditionsaferun,run_stream_done,run_dataset_done,promptreco_status}
  upload log        /logs/dropBox/uploadLog
  DQM GUI           /dqm/offline/data/json/{samples,archive/...}
  harvest area      %s
  condition DB      sqlite:%s
`, s.cfg.Seed, s.HarvestDir(), s.CondDBPath())
}
