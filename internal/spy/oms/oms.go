package oms

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
)

// Config configures the OMS spy.
type Config struct {
	// BaseURL is the aggregation API, e.g. https://cmsoms.cern.ch/agg/api/v1.
	BaseURL string
	Client  *httpx.Client // default httpx.New with its defaults
	Clock   clock.Clock   // default the wall clock
	Logger  *slog.Logger
	// ClassOf derives the run class (the config package's rules); default DefaultClassOf.
	ClassOf func(pcl.RunInfo) string
	// FirstRun is where to start when there is no cursor; 0 reads only the newest page of runs.
	FirstRun uint32
	// PageLimit is page[limit] (default 100); MaxPages bounds one poll (default 50).
	PageLimit int
	MaxPages  int
	// Settle is how long after its last_update a stopped run is taken as final and left behind the
	// cursor (default 1 h): OMS keeps correcting a run for a while after it stops.
	Settle time.Duration
}

// Spy is the OMS spy.
type Spy struct {
	cfg  Config
	base *url.URL
}

// New makes the spy.
func New(cfg Config) (*Spy, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("oms: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.Client == nil {
		cfg.Client = httpx.New(httpx.Options{})
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ClassOf == nil {
		cfg.ClassOf = DefaultClassOf
	}
	if cfg.PageLimit <= 0 {
		cfg.PageLimit = 100
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 50
	}
	if cfg.Settle <= 0 {
		cfg.Settle = time.Hour
	}
	return &Spy{cfg: cfg, base: u}, nil
}

func (s *Spy) Source() pcl.Source { return pcl.SourceOMS }

// Poll reads the runs above the cursor (every page) and emits one KindRun observation per run. The new
// cursor is the highest run up to which every run read has stopped and settled.
func (s *Spy) Poll(ctx context.Context, cursor string) (spy.Result, error) {
	now := s.cfg.Clock.Now()
	after, err := parseCursor(cursor)
	if err != nil {
		return spy.Result{}, fmt.Errorf("oms: %w", err)
	}
	runs, err := s.readRuns(ctx, s.firstQuery(after))
	if err != nil {
		return spy.Result{}, err
	}
	out := make([]pcl.Observation, 0, len(runs))
	next := after
	settled := true
	for _, r := range runs {
		info := r.Info
		info.Class = s.cfg.ClassOf(info)
		at := info.LastUpdate
		if at.IsZero() {
			at = info.Start
		}
		out = append(out, pcl.Observation{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: r.Number, At: at,
			Seen: now, RunInfo: &info})
		if settled && r.Number > after && s.final(info, now) {
			next = r.Number
		} else {
			settled = false
		}
	}
	// The view is the instant before the first page was asked for.
	return spy.Result{Observations: out, Cursor: formatCursor(next), View: now}, nil
}

func (s *Spy) final(info pcl.RunInfo, now time.Time) bool {
	if info.Stop == nil {
		return false
	}
	last := info.LastUpdate
	if last.IsZero() {
		last = *info.Stop
	}
	return now.Sub(last) >= s.cfg.Settle
}

// firstQuery asks for the runs above the cursor in run order, or the newest page when there is none.
func (s *Spy) firstQuery(after uint32) url.Values {
	q := url.Values{}
	q.Set("page[limit]", strconv.Itoa(s.cfg.PageLimit))
	q.Set("page[offset]", "0")
	switch {
	case after > 0:
		q.Set("filter[run_number][GT]", strconv.FormatUint(uint64(after), 10))
		q.Set("sort", "run_number")
	case s.cfg.FirstRun > 0:
		q.Set("filter[run_number][GE]", strconv.FormatUint(uint64(s.cfg.FirstRun), 10))
		q.Set("sort", "run_number")
	default:
		q.Set("sort", "-run_number")
	}
	return q
}

func (s *Spy) runsURL(q url.Values) string {
	u := *s.base
	u.Path += "/runs"
	u.RawQuery = q.Encode()
	return u.String()
}

// readRuns follows the pages: links.next rebased onto the base URL, or the next page[offset] when OMS
// gives no link but reported more runs than read. A link that repeats, or more pages than MaxPages, is
// an error, not an endless loop.
func (s *Spy) readRuns(ctx context.Context, q url.Values) ([]Run, error) {
	byRun := map[uint32]Run{}
	seen := map[string]bool{}
	single := q.Get("sort") == "-run_number" // no cursor: the newest page only
	for page := 0; ; page++ {
		if page >= s.cfg.MaxPages {
			return nil, fmt.Errorf("oms: more than %d pages of runs; raise MaxPages or move the cursor", s.cfg.MaxPages)
		}
		u := s.runsURL(q)
		if seen[u] {
			return nil, fmt.Errorf("oms: links.next loops back to %s", u)
		}
		seen[u] = true
		p, _, err := httpx.Get(ctx, s.cfg.Client, u, DecodeRuns)
		if err != nil {
			return nil, fmt.Errorf("oms: %w", err)
		}
		for _, r := range p.Runs {
			// A run listed twice (OMS paging over a changing table) keeps its newest version.
			if old, dup := byRun[r.Number]; !dup || r.Info.LastUpdate.After(old.Info.LastUpdate) {
				byRun[r.Number] = r
			}
		}
		if single || len(p.Runs) == 0 {
			break
		}
		next, err := s.nextQuery(q, p, len(byRun))
		if err != nil {
			return nil, err
		}
		if next == nil {
			break
		}
		q = next
	}
	runs := make([]Run, 0, len(byRun))
	for _, r := range byRun {
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(a, b Run) int { return int(a.Number) - int(b.Number) })
	return runs, nil
}

// nextQuery is the query of the next page, or nil when this was the last.
func (s *Spy) nextQuery(q url.Values, p Page, have int) (url.Values, error) {
	if p.Total >= 0 && have >= p.Total {
		return nil, nil
	}
	if p.Next != "" {
		nu, err := url.Parse(p.Next)
		if err != nil {
			return nil, fmt.Errorf("oms: links.next %q: %w", p.Next, err)
		}
		if !strings.HasSuffix(strings.TrimRight(nu.Path, "/"), "/runs") {
			return nil, fmt.Errorf("oms: links.next %q does not point at the runs endpoint", p.Next)
		}
		return nu.Query(), nil
	}
	if p.Total < 0 {
		return nil, nil
	}
	// OMS reported more runs than read but gave no link: page on by offset.
	next := url.Values{}
	for k, v := range q {
		next[k] = slices.Clone(v)
	}
	off, _ := strconv.Atoi(q.Get("page[offset]"))
	next.Set("page[offset]", strconv.Itoa(off+s.cfg.PageLimit))
	return next, nil
}

func parseCursor(c string) (uint32, error) {
	if c == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(c, 10, 32)
	if err != nil || n > maxRun {
		return 0, fmt.Errorf("cursor %q is not a run number", c)
	}
	return uint32(n), nil
}

func formatCursor(n uint32) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(n), 10)
}

var yearRE = regexp.MustCompile(`^Run20([0-9]{2})`)

// DefaultClassOf is a simple run-class rule for when the configuration gives none: cosmics by fill type
// or HLT menu, heavy ions by fill type, commissioning for anything but a global run, collisions otherwise;
// the two-digit year comes from the era (Run2025C → Collisions25).
func DefaultClassOf(r pcl.RunInfo) string {
	yy := ""
	if m := yearRE.FindStringSubmatch(r.Era); m != nil {
		yy = m[1]
	} else if !r.Start.IsZero() {
		yy = fmt.Sprintf("%02d", r.Start.Year()%100)
	}
	ft := strings.ToUpper(r.FillType)
	switch {
	case r.Sequence != "" && r.Sequence != "GLOBAL-RUN":
		return "Commissioning" + yy
	case ft == "COSMICS" || strings.Contains(strings.ToLower(r.HLTKey), "/cosmic"):
		return "Cosmics" + yy
	case ft == "PB" || ft == "ION" || ft == "IONS" || strings.Contains(ft, "PB"):
		return "HI" + yy
	}
	return "Collisions" + yy
}

var _ spy.Spy = (*Spy)(nil)
