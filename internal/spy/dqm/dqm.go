package dqm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
)

// API selects the GUI flavour.
type API string

const (
	APIClassic API = "classic" // /data/json/samples, /data/json/archive/...
	APIV1      API = "v1"      // api/v1/samples, api/v1/archive/...
)

// Config configures the DQM spy.
type Config struct {
	// BaseURL is the GUI, e.g. https://cmsweb.cern.ch/dqm/offline.
	BaseURL string
	API     API           // default APIClassic
	Client  *httpx.Client // default httpx.New with its defaults
	Hints   spy.Hints     // the open runs; without them the spy asks nothing
	Clock   clock.Clock
	// Catalogue gives the workflows and their AlCaReco producers (default the built-in one).
	Catalogue *pcl.Catalogue
	// Folders maps a workflow name to its DQM folder in the ALCAPROMPT sample; a workflow not listed uses
	// AlCaReco/<workflow name>. Set it to the folders the PCL harvesting writes at a site.
	Folders map[string]string
	Logger  *slog.Logger
}

// DefaultFolder is the folder of a workflow that Config.Folders does not name.
func DefaultFolder(workflow string) string { return "AlCaReco/" + workflow }

// Spy is the DQM GUI spy.
type Spy struct {
	cfg  Config
	base string
}

// New makes the spy.
func New(cfg Config) (*Spy, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dqm: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	switch cfg.API {
	case "":
		cfg.API = APIClassic
	case APIClassic, APIV1:
	default:
		return nil, fmt.Errorf("dqm: API %q is neither classic nor v1", cfg.API)
	}
	if cfg.Client == nil {
		cfg.Client = httpx.New(httpx.Options{})
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Catalogue == nil {
		cfg.Catalogue = pcl.DefaultCatalogue()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for w, f := range cfg.Folders {
		if _, ok := cfg.Catalogue.Workflow(w); !ok {
			return nil, fmt.Errorf("dqm: folder given for unknown workflow %q", w)
		}
		if strings.Contains(f, "..") || strings.HasPrefix(f, "/") || f == "" {
			return nil, fmt.Errorf("dqm: folder %q of workflow %s is not a relative DQM path", f, w)
		}
	}
	return &Spy{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/")}, nil
}

func (s *Spy) Source() pcl.Source { return pcl.SourceDQM }

// Poll reads the quality of each workflow's harvesting output for every open, stopped run, and reports
// the verdicts that changed since the ones it last reported. The GUI gives no time: a verdict is a state,
// re-read while the run is open, and stamped with the poll that saw it change. So the fact "verdict v
// from time t" is one observation, and a verdict that flips back (good, bad, good) is three, of which the
// newest counts. The cursor holds the verdicts last reported for the open runs; a lost cursor only
// reports the current verdicts again, at a later time, which changes no state.
func (s *Spy) Poll(ctx context.Context, raw string) (spy.Result, error) {
	if s.cfg.Hints == nil {
		return spy.Result{Cursor: raw}, nil
	}
	runs, err := s.cfg.Hints.OpenRuns(ctx)
	if err != nil {
		return spy.Result{}, fmt.Errorf("dqm: open runs: %w", err)
	}
	cur := s.parseCursor(raw)
	open := map[uint32]bool{}
	var stopped []uint32
	for _, r := range runs {
		open[r.Run] = true
		if r.Stopped && r.Run != 0 && r.Run <= 9_999_999 {
			stopped = append(stopped, r.Run)
		}
	}
	samples, err := s.samplesOf(ctx, stopped)
	if err != nil {
		return spy.Result{}, err
	}
	var out []pcl.Observation
	for _, run := range stopped {
		obs, err := s.pollRun(ctx, run, samples[run])
		if err != nil {
			return spy.Result{}, err
		}
		for _, o := range obs {
			if cur.changed(o) {
				out = append(out, o)
			}
		}
	}
	cur.keep(open)
	b, err := json.Marshal(cur)
	if err != nil {
		return spy.Result{}, fmt.Errorf("dqm: encoding cursor: %w", err)
	}
	return spy.Result{Observations: out, Cursor: string(b)}, nil
}

// cursor is what the spy last reported, per open run and workflow.
type cursor struct {
	Runs map[uint32]map[string]verdict `json:"runs"`
}

// verdict is one workflow's reported quality and the dataset it was read from: a new dataset version
// (a re-harvest) is news even with the same quality.
type verdict struct {
	Dataset string      `json:"dataset"`
	Quality pcl.Quality `json:"quality"`
}

// maxCursorRuns bounds the cursor: the agency's open runs are a few hundred at most, and hints naming
// more are garbage that must not grow the stored cursor without end.
const maxCursorRuns = 2000

func (s *Spy) parseCursor(raw string) *cursor {
	c := &cursor{Runs: map[uint32]map[string]verdict{}}
	if raw == "" {
		return c
	}
	if err := json.Unmarshal([]byte(raw), c); err != nil || c.Runs == nil {
		s.cfg.Logger.Warn("dqm cursor unreadable, reporting the current verdicts again", "err", err)
		return &cursor{Runs: map[uint32]map[string]verdict{}}
	}
	return c
}

// changed says whether o differs from what was last reported for its run and workflow, and records it.
func (c *cursor) changed(o pcl.Observation) bool {
	v := verdict{Dataset: o.Dataset, Quality: o.Quality}
	byWorkflow := c.Runs[o.Run]
	if last, ok := byWorkflow[o.Workflow]; ok && last == v {
		return false
	}
	if byWorkflow == nil {
		byWorkflow = map[string]verdict{}
		c.Runs[o.Run] = byWorkflow
	}
	byWorkflow[o.Workflow] = v
	return true
}

// keep forgets the runs that are no longer open, and the oldest ones beyond the bound.
func (c *cursor) keep(open map[uint32]bool) {
	for run := range c.Runs {
		if !open[run] {
			delete(c.Runs, run)
		}
	}
	if len(c.Runs) <= maxCursorRuns {
		return
	}
	runs := slices.Sorted(maps.Keys(c.Runs))
	for _, run := range runs[:len(runs)-maxCursorRuns] {
		delete(c.Runs, run)
	}
}

// pcaDatasetRE matches a PCL harvesting dataset and captures the AlCaReco producer:
// /StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT.
var pcaDatasetRE = regexp.MustCompile(`^/Stream[A-Za-z0-9]*Express[A-Za-z0-9]*/[^/]*-(PromptCalibProd[A-Za-z0-9]*)-Express-v[0-9]+/ALCAPROMPT$`)

// pollRun reads the verdicts of one run's harvested workflows, given the run's samples.
func (s *Spy) pollRun(ctx context.Context, run uint32, samples []Sample) ([]pcl.Observation, error) {
	byProducer := map[string]string{}
	for _, smp := range samples {
		if m := pcaDatasetRE.FindStringSubmatch(smp.Dataset); m != nil {
			// Several versions of one producer's dataset: the highest sorts last.
			if prev, ok := byProducer[m[1]]; !ok || smp.Dataset > prev {
				byProducer[m[1]] = smp.Dataset
			}
		}
	}
	var out []pcl.Observation
	now := s.cfg.Clock.Now()
	for _, w := range s.cfg.Catalogue.Workflows() {
		dataset, ok := byProducer[w.Producer]
		if !ok {
			continue // not harvested (yet), or the workflow does not run for this run
		}
		folder := s.folder(w.Name)
		f, err := s.archive(ctx, run, dataset, folder)
		if err != nil {
			var fe *httpx.Error
			if errors.As(err, &fe) && fe.Status == http.StatusNotFound {
				s.cfg.Logger.Debug("dqm: no such folder", "run", run, "workflow", w.Name, "folder", folder)
				continue
			}
			return nil, err
		}
		out = append(out, pcl.Observation{Source: pcl.SourceDQM, Kind: pcl.KindDQMQuality, Run: run, At: now,
			Seen: now, Workflow: w.Name, Dataset: dataset, Quality: QualityOf(f)})
	}
	return out, nil
}

func (s *Spy) folder(workflow string) string {
	if f, ok := s.cfg.Folders[workflow]; ok {
		return strings.Trim(f, "/")
	}
	return DefaultFolder(workflow)
}

// samplesPerQuery bounds the runs one classic samples query names, so that its URL stays short.
const samplesPerQuery = 40

// samplesOf lists the samples of the runs, by run. The classic GUI takes a regular expression of runs,
// so it is asked once for up to samplesPerQuery runs (^(392700|392701)$); the new GUI takes one run
// per query.
func (s *Spy) samplesOf(ctx context.Context, runs []uint32) (map[uint32][]Sample, error) {
	out := map[uint32][]Sample{}
	per := samplesPerQuery
	if s.cfg.API == APIV1 {
		per = 1
	}
	for len(runs) > 0 {
		chunk := runs[:min(per, len(runs))]
		runs = runs[len(chunk):]
		if err := s.samples(ctx, chunk, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// samples asks for the samples of the runs (one for the new GUI) and adds them to out.
func (s *Spy) samples(ctx context.Context, runs []uint32, out map[uint32][]Sample) error {
	names := make([]string, len(runs))
	asked := make(map[uint32]bool, len(runs))
	for i, r := range runs {
		names[i] = strconv.FormatUint(uint64(r), 10)
		asked[r] = true
	}
	var u string
	decode := DecodeSamples
	switch {
	case s.cfg.API == APIV1:
		u = s.base + "/api/v1/samples?" + url.Values{"run": {names[0]}, "dataset": {"ALCAPROMPT"}}.Encode()
		decode = DecodeSamplesV1
	case len(names) == 1:
		u = s.base + "/data/json/samples?" + url.Values{"match": {"PromptCalibProd.*ALCAPROMPT"}, "run": {"^" + names[0] + "$"}}.Encode()
	default:
		u = s.base + "/data/json/samples?" + url.Values{"match": {"PromptCalibProd.*ALCAPROMPT"}, "run": {"^(" + strings.Join(names, "|") + ")$"}}.Encode()
	}
	got, _, err := httpx.Get(ctx, s.cfg.Client, u, decode)
	if err != nil {
		return fmt.Errorf("dqm: %w", err)
	}
	for _, smp := range got {
		if !asked[smp.Run] {
			return fmt.Errorf("dqm: GET %s: asked for run(s) %s, got a sample of run %d", u, strings.Join(names, ", "), smp.Run)
		}
		out[smp.Run] = append(out[smp.Run], smp)
	}
	return nil
}

func (s *Spy) archive(ctx context.Context, run uint32, dataset, folder string) (Folder, error) {
	path := strconv.FormatUint(uint64(run), 10) + dataset + "/" + folder
	var u string
	decode := DecodeArchive
	if s.cfg.API == APIV1 {
		u = s.base + "/api/v1/archive/" + escapePath(path)
		decode = DecodeArchiveV1
	} else {
		u = s.base + "/data/json/archive/" + escapePath(path)
	}
	f, _, err := httpx.Get(ctx, s.cfg.Client, u, decode)
	if err != nil {
		return Folder{}, fmt.Errorf("dqm: %w", err)
	}
	return f, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, x := range parts {
		parts[i] = url.PathEscape(x)
	}
	return strings.Join(parts, "/")
}

var _ spy.Spy = (*Spy)(nil)
