package dqm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/spy/fetch"
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
	Client  *fetch.Client // default fetch.New with its defaults
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
		cfg.Client = fetch.New(fetch.Options{})
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

// Poll reads the quality of each workflow's harvesting output for every open, stopped run. The cursor is
// unused: quality results are states, re-read while the run is open.
func (s *Spy) Poll(ctx context.Context, cursor string) (spy.Result, error) {
	if s.cfg.Hints == nil {
		return spy.Result{Cursor: cursor}, nil
	}
	runs, err := s.cfg.Hints.OpenRuns(ctx)
	if err != nil {
		return spy.Result{}, fmt.Errorf("dqm: open runs: %w", err)
	}
	var out []pcl.Observation
	for _, r := range runs {
		if !r.Stopped || r.Run == 0 || r.Run > 9_999_999 {
			continue
		}
		obs, err := s.pollRun(ctx, r.Run)
		if err != nil {
			return spy.Result{}, err
		}
		out = append(out, obs...)
	}
	return spy.Result{Observations: out, Cursor: cursor}, nil
}

// pcaDatasetRE matches a PCL harvesting dataset and captures the AlCaReco producer:
// /StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT.
var pcaDatasetRE = regexp.MustCompile(`^/Stream[A-Za-z0-9]*Express[A-Za-z0-9]*/[^/]*-(PromptCalibProd[A-Za-z0-9]*)-Express-v[0-9]+/ALCAPROMPT$`)

func (s *Spy) pollRun(ctx context.Context, run uint32) ([]pcl.Observation, error) {
	samples, err := s.samples(ctx, run)
	if err != nil {
		return nil, err
	}
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
			var fe *fetch.Error
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

func (s *Spy) samples(ctx context.Context, run uint32) ([]Sample, error) {
	rs := strconv.FormatUint(uint64(run), 10)
	var u string
	decode := DecodeSamples
	if s.cfg.API == APIV1 {
		u = s.base + "/api/v1/samples?" + url.Values{"run": {rs}, "dataset": {"ALCAPROMPT"}}.Encode()
		decode = DecodeSamplesV1
	} else {
		u = s.base + "/data/json/samples?" + url.Values{"match": {"PromptCalibProd.*ALCAPROMPT"}, "run": {"^" + rs + "$"}}.Encode()
	}
	var raw json.RawMessage
	if _, err := s.cfg.Client.GetJSON(ctx, u, &raw); err != nil {
		return nil, fmt.Errorf("dqm: %w", err)
	}
	out, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("dqm: GET %s: %w", u, err)
	}
	for _, smp := range out {
		if smp.Run != run {
			return nil, fmt.Errorf("dqm: GET %s: asked for run %d, got a sample of run %d", u, run, smp.Run)
		}
	}
	return out, nil
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
	var raw json.RawMessage
	if _, err := s.cfg.Client.GetJSON(ctx, u, &raw); err != nil {
		return Folder{}, fmt.Errorf("dqm: %w", err)
	}
	f, err := decode(raw)
	if err != nil {
		return Folder{}, fmt.Errorf("dqm: GET %s: %w", u, err)
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
