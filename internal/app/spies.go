package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/metrics"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/spy/conddb"
	"github.com/cms-pcl/spyagency/internal/spy/dqm"
	"github.com/cms-pcl/spyagency/internal/spy/dropbox"
	"github.com/cms-pcl/spyagency/internal/spy/harvest"
	"github.com/cms-pcl/spyagency/internal/spy/oms"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
	"github.com/cms-pcl/spyagency/internal/spy/tier0"
	"github.com/cms-pcl/spyagency/internal/store"
)

// SpyParams are what building one spy needs besides its source block.
type SpyParams struct {
	Catalogue *pcl.Catalogue
	Clock     clock.Clock
	Logger    *slog.Logger
	Hints     spy.Hints
	ClassOf   func(pcl.RunInfo) string
	Tags      []string      // conddb: a fixed list of tags (probe's --tag)
	FirstRun  uint32        // oms: where to start without a cursor (probe's --run)
	Lookback  time.Duration // harvest: files older than this are neither read nor remembered (agency.lookback)
	HTTP      *http.Client  // the HTTP sources' client (backfill's rate limit); nil: httpx's default
}

// NewSpy builds the spy of one source from its configuration block.
func NewSpy(src pcl.Source, sc config.Source, p SpyParams) (spy.Spy, error) {
	log := p.Logger.With("spy", string(src))
	client := func() *httpx.Client {
		return httpx.New(httpx.Options{Timeout: sc.Timeout, UserAgent: "spyagency", HTTP: p.HTTP,
			Token: func() (string, error) { return sc.Token(os.LookupEnv) }})
	}
	switch src {
	case pcl.SourceTier0:
		return tier0.New(tier0.Config{BaseURL: sc.URL, Client: client(), Hints: p.Hints, Clock: p.Clock, Catalogue: p.Catalogue, Logger: log})
	case pcl.SourceOMS:
		return oms.New(oms.Config{BaseURL: sc.URL, Client: client(), Clock: p.Clock, Logger: log, ClassOf: p.ClassOf, FirstRun: p.FirstRun})
	case pcl.SourceDQM:
		return dqm.New(dqm.Config{BaseURL: sc.URL, Client: client(), Hints: p.Hints, Clock: p.Clock, Catalogue: p.Catalogue, Logger: log})
	case pcl.SourceHarvest:
		notify := harvest.Notifications(sc.HarvestNotifications())
		return harvest.New(harvest.Config{Dir: sc.Dir, Catalogue: p.Catalogue, Logger: log, Clock: p.Clock,
			Lookback: p.Lookback, FullRescan: sc.FullRescan, MtimeSlack: sc.MtimeSlack, Notifications: notify})
	case pcl.SourceCondDB:
		return conddb.New(conddb.Config{DSN: sc.DSN, Tags: p.Tags, Hints: p.Hints, Clock: p.Clock, Logger: log})
	case pcl.SourceDropbox:
		return dropbox.New(dropbox.Config{URL: sc.URL, Client: client(), Catalogue: p.Catalogue, Clock: p.Clock, Logger: log})
	}
	return nil, fmt.Errorf("unknown source %q", src)
}

// spies are the process's spies and the runners that poll them. They answer the agency's and the
// web's questions about the sources' health.
type spies struct {
	runners []*runner.Runner
	closers []io.Closer // the spies that hold a handle (the conddb spy's database, the harvest spy's inotify)
}

// SourceHealth is every spy's health, in the order of the configuration.
func (s *spies) SourceHealth() []pcl.SourceHealth {
	out := make([]pcl.SourceHealth, 0, len(s.runners))
	for _, r := range s.runners {
		out = append(out, r.Health())
	}
	return out
}

// close releases the spies' handles; their runners must have stopped.
func (s *spies) close() []error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	s.closers = nil
	return errs
}

// buildRunners builds the enabled sources' spies and their runners, and lists the spies that must be
// closed (on an error too, so the caller can close what was built).
func buildRunners(cfg *config.Config, cat *pcl.Catalogue, clk clock.Clock, log *slog.Logger, st store.Store, ag *agency.Agency, stepped bool, hc *http.Client, ev *metrics.Events) ([]*runner.Runner, []io.Closer, error) {
	classes, err := config.NewClassifier(cfg.RunClasses)
	if err != nil {
		return nil, nil, err
	}
	var (
		out     []*runner.Runner
		closers []io.Closer
	)
	for _, src := range cfg.Sources.Enabled() {
		sc, _ := cfg.Sources.ByName(src)
		sp, err := NewSpy(src, sc, SpyParams{Catalogue: cat, Clock: clk, Logger: log, Hints: ag.Hints(), ClassOf: classes.ClassOf,
			Lookback: cfg.Agency.Lookback, HTTP: hc})
		if err != nil {
			return nil, closers, fmt.Errorf("source %s: %w", src, err)
		}
		if c, ok := sp.(io.Closer); ok {
			closers = append(closers, c)
		}
		retries := 0 // the runner's default
		if stepped {
			retries = -1
		}
		// Clock schedules the polls; their deadlines and backoff are the runner's wall clock (its
		// default), so that simulated time never shortens a source's time to answer.
		out = append(out, runner.New(sp, runner.Options{Clock: clk, Interval: sc.Interval, Jitter: sc.Jitter, Timeout: sc.Timeout,
			StaleAfter: sc.StaleAfter, Retries: retries, Cursors: st, Sink: detectedSink(ag.Ingest, ev), Viewed: ag.SourceViewed,
			Logger: log.With("spy", string(src))}))
	}
	return out, closers, nil
}
