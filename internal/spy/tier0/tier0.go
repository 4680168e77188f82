package tier0

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
)

// Config configures the Tier-0 spy.
type Config struct {
	// BaseURL is the service instance, e.g. https://cmsweb.cern.ch/t0wmadatasvc/prod.
	BaseURL string
	Client  *httpx.Client // default httpx.New with its defaults
	// Hints give the open runs; without them the spy asks only the global endpoints.
	Hints spy.Hints
	Clock clock.Clock // default the wall clock
	// Catalogue, when set, limits run_stream_done questions to the express streams that run a PCL workflow.
	Catalogue *pcl.Catalogue
	Logger    *slog.Logger
}

// Spy is the Tier-0 Data Service spy.
type Spy struct {
	cfg  Config
	base string

	mu         sync.Mutex
	cache      map[string]cached // URL → reply still fresh by its Expires
	promptReco *bool
	view       time.Time // the poll's view: the oldest moment any answer it used was fetched
}

// state is what the spy knows of the open runs. It travels in the cursor, which the runner saves only
// after the store accepted the poll's observations: the spy stops asking about a run's express_config or
// a stream only once the agency surely has the answer, even across a crash.
type state struct {
	Configured map[uint32][]string `json:"configured,omitempty"` // run → its express streams
	Done       map[uint32][]string `json:"done,omitempty"`       // run → streams seen done
}

func parseState(cursor string) (state, error) {
	st := state{Configured: map[uint32][]string{}, Done: map[uint32][]string{}}
	if cursor == "" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(cursor), &st); err != nil {
		return state{Configured: map[uint32][]string{}, Done: map[uint32][]string{}}, err
	}
	if st.Configured == nil {
		st.Configured = map[uint32][]string{}
	}
	if st.Done == nil {
		st.Done = map[uint32][]string{}
	}
	return st, nil
}

// update learns from a poll's observations and forgets the runs that are no longer open.
func (st *state) update(obs []pcl.Observation, open map[uint32]bool) {
	for _, o := range obs {
		switch {
		case o.Kind == pcl.KindExpressConfig && !slices.Contains(st.Configured[o.Run], o.Stream):
			st.Configured[o.Run] = append(st.Configured[o.Run], o.Stream)
		case o.Kind == pcl.KindStreamDone && o.Done && !slices.Contains(st.Done[o.Run], o.Stream):
			st.Done[o.Run] = append(st.Done[o.Run], o.Stream)
		}
	}
	for _, m := range []map[uint32][]string{st.Configured, st.Done} {
		for run, streams := range m {
			if !open[run] {
				delete(m, run)
				continue
			}
			slices.Sort(streams)
		}
	}
}

func (st *state) encode() string {
	if len(st.Configured) == 0 && len(st.Done) == 0 {
		return ""
	}
	b, _ := json.Marshal(st) // maps of strings cannot fail to encode
	return string(b)
}

type cached struct {
	fetched time.Time // the poll that asked the service; the answer is its view, not a later poll's
	until   time.Time
	obs     []pcl.Observation
}

// New makes the spy.
func New(cfg Config) (*Spy, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tier0: base URL %q is not an http(s) URL", cfg.BaseURL)
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
	return &Spy{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), cache: map[string]cached{}}, nil
}

func (s *Spy) Source() pcl.Source { return pcl.SourceTier0 }

// PromptRecoEnabled is the last promptreco_status seen (ok false before any).
func (s *Spy) PromptRecoEnabled() (enabled, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.promptReco == nil {
		return false, false
	}
	return *s.promptReco, true
}

// Poll asks the service what is new about the open runs. The cursor carries which runs are configured
// and which streams are done (see state); the cache keeps the spy from asking more often than the service
// refreshes its answers.
func (s *Spy) Poll(ctx context.Context, cursor string) (spy.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock.Now()
	s.view = now // before the first question; an answer from the cache moves it back (see get)
	s.prune(now)
	st, err := parseState(cursor)
	if err != nil {
		// A cursor from another version costs only some questions asked again.
		s.cfg.Logger.Warn("tier0: ignoring an unreadable cursor", "err", err)
	}
	var runs []pcl.OpenRun
	if s.cfg.Hints != nil {
		if runs, err = s.cfg.Hints.OpenRuns(ctx); err != nil {
			return spy.Result{}, fmt.Errorf("tier0: open runs: %w", err)
		}
	}
	var out []pcl.Observation
	obs, err := s.get(ctx, now, s.endpoint("firstconditionsaferun", nil), s.decodeFCSR)
	if err != nil {
		return spy.Result{}, err
	}
	out = append(out, obs...)
	if _, err := s.get(ctx, now, s.endpoint("promptreco_status", nil), s.decodePromptReco); err != nil {
		return spy.Result{}, err
	}
	open := map[uint32]bool{}
	for _, r := range runs {
		if !ValidRun(uint64(r.Run)) {
			s.cfg.Logger.Warn("tier0: ignoring an open run that is not a run number", "run", r.Run)
			continue
		}
		open[r.Run] = true
		obs, err := s.pollRun(ctx, now, r, &st)
		if err != nil {
			return spy.Result{}, err
		}
		out = append(out, obs...)
	}
	st.update(out, open)
	return spy.Result{Observations: out, Cursor: st.encode(), View: s.view}, nil
}

// pollRun asks what the agency does not know yet about one open run.
func (s *Spy) pollRun(ctx context.Context, now time.Time, r pcl.OpenRun, st *state) ([]pcl.Observation, error) {
	var out []pcl.Observation
	q := url.Values{"run": {strconv.FormatUint(uint64(r.Run), 10)}}
	if _, ok := st.Configured[r.Run]; !ok {
		obs, err := s.get(ctx, now, s.endpoint("express_config", q), s.decodeExpress(r.Run))
		if err != nil {
			return nil, err
		}
		out = append(out, obs...)
	}
	if !r.Stopped {
		return out, nil
	}
	configured := st.Configured[r.Run]
	for _, o := range out { // express_config answered just now
		configured = append(configured, o.Stream)
	}
	for _, stream := range s.streamsToAsk(r, configured, st.Done[r.Run]) {
		sq := url.Values{"run": q["run"], "stream": {stream}}
		obs, err := s.get(ctx, now, s.endpoint("run_stream_done", sq), s.decodeDone(r.Run, stream))
		if err != nil {
			return nil, err
		}
		out = append(out, obs...)
	}
	obs, err := s.get(ctx, now, s.endpoint("reco_config", q), s.decodeReco(r.Run))
	if err != nil {
		return nil, err
	}
	return append(out, obs...), nil
}

// streamsToAsk are the run's express streams not seen done: those the hints name and those
// express_config listed, limited to streams that run a PCL workflow when a catalogue is given.
func (s *Spy) streamsToAsk(r pcl.OpenRun, configured, done []string) []string {
	var out []string
	for _, st := range append(slices.Clone(r.Streams), configured...) {
		if !ValidName(st) {
			s.cfg.Logger.Warn("tier0: ignoring an invalid stream name", "run", r.Run, "stream", st)
			continue
		}
		if slices.Contains(done, st) || slices.Contains(out, st) || !s.relevant(st) {
			continue
		}
		out = append(out, st)
	}
	slices.Sort(out)
	return out
}

func (s *Spy) relevant(stream string) bool {
	if s.cfg.Catalogue == nil {
		return true
	}
	for _, w := range s.cfg.Catalogue.Workflows() {
		if w.RunsIn(stream) {
			return true
		}
	}
	return false
}

func (s *Spy) endpoint(name string, q url.Values) string {
	u := s.base + "/" + name
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// get answers from the cache while the URL's last reply is fresh, else asks the service and decodes.
// Cached observations are given again, so that a poll that failed elsewhere loses nothing.
func (s *Spy) get(ctx context.Context, now time.Time, u string, decode func([]byte, time.Time) ([]pcl.Observation, error)) ([]pcl.Observation, error) {
	if c, ok := s.cache[u]; ok && now.Before(c.until) {
		if c.fetched.Before(s.view) {
			s.view = c.fetched
		}
		return c.obs, nil
	}
	obs, meta, err := httpx.Get(ctx, s.cfg.Client, u, func(b []byte) ([]pcl.Observation, error) { return decode(b, now) })
	if err != nil {
		return nil, fmt.Errorf("tier0: %w", err)
	}
	if meta.MaxAge > 0 {
		s.cache[u] = cached{fetched: now, until: now.Add(meta.MaxAge), obs: obs}
	}
	return obs, nil
}

func (s *Spy) obs(kind pcl.Kind, run uint32, now time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: kind, Run: run, At: now, Seen: now}
}

func (s *Spy) decodeFCSR(data []byte, now time.Time) ([]pcl.Observation, error) {
	run, ok, err := DecodeFCSR(data)
	if err != nil || !ok {
		return nil, err
	}
	return []pcl.Observation{s.obs(pcl.KindFCSR, run, now)}, nil
}

func (s *Spy) decodePromptReco(data []byte, _ time.Time) ([]pcl.Observation, error) {
	v, ok, err := DecodeFlag(data)
	if err != nil || !ok {
		return nil, err
	}
	if s.promptReco == nil || *s.promptReco != v {
		s.cfg.Logger.Info("tier0: PromptReco release switch", "enabled", v)
	}
	s.promptReco = &v
	return nil, nil
}

func (s *Spy) decodeExpress(run uint32) func([]byte, time.Time) ([]pcl.Observation, error) {
	return func(data []byte, now time.Time) ([]pcl.Observation, error) {
		rows, err := DecodeExpressConfig(data)
		if err != nil {
			return nil, err
		}
		byStream := map[string]ExpressConfig{}
		for i, r := range rows {
			if r.Run != uint64(run) {
				return nil, fmt.Errorf("result[%d].run: %d, but run %d was asked", i, r.Run, run)
			}
			if prev, dup := byStream[r.Stream]; dup && prev.AlcaSkim != r.AlcaSkim {
				return nil, fmt.Errorf("result[%d]: stream %s listed twice with different alca_skim", i, r.Stream)
			}
			byStream[r.Stream] = r
		}
		if len(byStream) == 0 {
			return nil, nil // Tier-0 has not configured the run yet: ask again later
		}
		var out []pcl.Observation
		for st, r := range byStream {
			o := s.obs(pcl.KindExpressConfig, run, now)
			o.Stream, o.Producers = st, r.Producers()
			out = append(out, o)
		}
		slices.SortFunc(out, func(a, b pcl.Observation) int { return strings.Compare(a.Stream, b.Stream) })
		return out, nil
	}
}

func (s *Spy) decodeDone(run uint32, stream string) func([]byte, time.Time) ([]pcl.Observation, error) {
	return func(data []byte, now time.Time) ([]pcl.Observation, error) {
		done, ok, err := DecodeFlag(data)
		if err != nil || !ok {
			return nil, err
		}
		o := s.obs(pcl.KindStreamDone, run, now)
		o.Stream, o.Done = stream, done
		return []pcl.Observation{o}, nil
	}
}

func (s *Spy) decodeReco(run uint32) func([]byte, time.Time) ([]pcl.Observation, error) {
	return func(data []byte, now time.Time) ([]pcl.Observation, error) {
		rows, err := DecodeRecoConfig(data)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		var out []pcl.Observation
		for i, r := range rows {
			if r.Run != uint64(run) {
				return nil, fmt.Errorf("result[%d].run: %d, but run %d was asked", i, r.Run, run)
			}
			if seen[r.PrimaryDataset] {
				continue
			}
			seen[r.PrimaryDataset] = true
			o := s.obs(pcl.KindRelease, run, now)
			o.Dataset = r.PrimaryDataset
			out = append(out, o)
		}
		slices.SortFunc(out, func(a, b pcl.Observation) int { return strings.Compare(a.Dataset, b.Dataset) })
		return out, nil
	}
}

// prune drops cache entries that expired, so the cache stays as small as the set of open runs.
func (s *Spy) prune(now time.Time) {
	for u, c := range s.cache {
		if !now.Before(c.until) {
			delete(s.cache, u)
		}
	}
}

var _ spy.Spy = (*Spy)(nil)
