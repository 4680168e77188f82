package dropbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
)

// LogPath is where the feed lives under the service's root (docs/upload-log.md).
const LogPath = "/logs/dropBox/uploadLog"

// Config builds an upload-log spy.
type Config struct {
	// URL is the service's root, e.g. https://cms-conddb.cern.ch; the feed is at URL + LogPath.
	URL string
	// Start is where a spy without a cursor starts reading (zero: the oldest record the log keeps).
	Start time.Time
	// PageSize is the limit asked per request (default 500); MaxPages bounds the requests of one poll
	// (default 20): the rest comes on the next poll.
	PageSize  int
	MaxPages  int
	Catalogue *pcl.Catalogue // default: the built-in catalogue
	Client    *httpx.Client  // default: httpx.New with its defaults
	Logger    *slog.Logger
	Clock     clock.Clock
}

// Spy reads one upload log.
type Spy struct {
	cfg  Config
	base *url.URL
	log  *slog.Logger
	clk  clock.Clock
}

// New checks the configuration.
func New(cfg Config) (*Spy, error) {
	if cfg.URL == "" {
		return nil, apperr.Errorf(apperr.Invalid, "dropbox spy: no URL")
	}
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, apperr.Errorf(apperr.Invalid, "dropbox spy: URL %q is not an http(s) URL", cfg.URL)
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 500
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 20
	}
	if cfg.Catalogue == nil {
		cfg.Catalogue = pcl.DefaultCatalogue()
	}
	if cfg.Client == nil {
		cfg.Client = httpx.New(httpx.Options{})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Spy{cfg: cfg, base: base, log: cfg.Logger.With("source", pcl.SourceDropbox), clk: cfg.Clock}, nil
}

// Source names the spied system.
func (s *Spy) Source() pcl.Source { return pcl.SourceDropbox }

// cursor is the position in the log: the newest logged instant read and the records read at it.
type cursor struct {
	Since time.Time `json:"since"`
	Seen  []string  `json:"seen,omitempty"`
}

func (c *cursor) advance(r Record) {
	if r.Logged.After(c.Since) {
		c.Since, c.Seen = r.Logged, nil
	}
	c.Seen = append(c.Seen, r.key())
}

func (c *cursor) has(r Record) bool {
	return r.Logged.Equal(c.Since) && slices.Contains(c.Seen, r.key())
}

// Poll reads the records logged since the cursor, page by page.
func (s *Spy) Poll(ctx context.Context, raw string) (spy.Result, error) {
	view := s.clk.Now() // before the first page is asked for
	cur := cursor{Since: s.cfg.Start.UTC()}
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &cur); err != nil {
			// A damaged cursor must not wedge the spy; reading again from Start only repeats facts the
			// store already has.
			s.log.Warn("dropbox cursor unreadable, reading from the configured start", "err", err)
			cur = cursor{Since: s.cfg.Start.UTC()}
		}
	}
	var out []pcl.Observation
	partial := true // until a reply says there is no more
	for range s.cfg.MaxPages {
		limit := s.cfg.PageSize + len(cur.Seen)
		u := s.pageURL(cur.Since, limit)
		page, err := s.fetch(ctx, u)
		if err != nil {
			return spy.Result{}, err
		}
		if page.Next != nil && !page.Sorted {
			return spy.Result{}, fmt.Errorf("dropbox spy: GET %s: records out of logged order in a partial reply; cannot resume safely", u)
		}
		fresh := 0
		for _, r := range page.Records {
			if r.Logged.Before(cur.Since) || cur.has(r) {
				continue // read before: the log ignored since, or repeats the last instant
			}
			fresh++
			cur.advance(r)
			if o, ok := s.observe(r); ok {
				out = append(out, o)
			}
		}
		if page.Next == nil {
			partial = false
			break
		}
		if fresh == 0 {
			// A partial reply with nothing new would be asked again forever.
			return spy.Result{}, fmt.Errorf("dropbox spy: GET %s: partial reply brought no new record", u)
		}
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return spy.Result{}, fmt.Errorf("dropbox spy: encoding cursor: %w", err)
	}
	return spy.Result{Observations: out, Cursor: string(b), View: view, Partial: partial}, nil
}

func (s *Spy) pageURL(since time.Time, limit int) string {
	u := *s.base
	u.Path += LogPath
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	q.Set("limit", strconv.Itoa(limit))
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Spy) fetch(ctx context.Context, u string) (Page, error) {
	page, _, err := httpx.Get(ctx, s.cfg.Client, u, DecodeLog)
	if err != nil {
		return Page{}, fmt.Errorf("dropbox spy: %w", err)
	}
	return page, nil
}

// observe turns a record into an observation; records of other users' uploads are skipped.
func (s *Spy) observe(r Record) (pcl.Observation, bool) {
	n, err := pcl.ParseHarvestName(path.Base(r.FileName))
	if err != nil || n.Ext != pcl.HarvestDB {
		s.log.Debug("upload log: not a PCL harvest file; skipped", "file", r.FileName, "tag", r.DestinationTag)
		return pcl.Observation{}, false
	}
	w, _, ok := s.cfg.Catalogue.ByInputTag(r.InputTag)
	if !ok {
		s.log.Debug("upload log: input tag not in the catalogue; skipped", "file", r.FileName, "input_tag", r.InputTag)
		return pcl.Observation{}, false
	}
	if r.InputTag != n.InputTag {
		s.log.Warn("upload log: record's inputTag differs from its file name's; using the record's",
			"file", r.FileName, "input_tag", r.InputTag)
	}
	return pcl.Observation{
		Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: n.Run, At: r.Logged, Seen: s.clk.Now(),
		Workflow: w.Name, InputTag: r.InputTag, File: path.Base(r.FileName), FileHash: r.FileHash,
		Tag: r.DestinationTag, Status: r.Status, Info: r.Info,
	}, true
}
