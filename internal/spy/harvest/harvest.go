package harvest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
)

// Config builds a harvest spy.
type Config struct {
	// Dir is the harvest area's root, e.g. /eos/cms/store/express/tier0_harvest; it is scanned
	// recursively.
	Dir string
	// Catalogue maps input tags to workflows (default: the built-in catalogue).
	Catalogue *pcl.Catalogue
	Logger    *slog.Logger
	Clock     clock.Clock
}

// Spy watches one harvest area.
type Spy struct {
	cfg      Config
	log      *slog.Logger
	clk      clock.Clock
	instance string // tells this process's cursors from another's

	mu       sync.Mutex
	gen      uint64
	entries  map[string]*entry // by file name (.db for pairs, .txt.uploaded for markers)
	ignored  map[string]bool   // names already logged as not matching
	problems map[string]Problem
}

// Problem is a file the spy could not read.
type Problem struct {
	File  string    `json:"file"`
	Error string    `json:"error"`
	Since time.Time `json:"since"`
}

// entry is what the spy made of one upload's files, kept while they do not change.
type entry struct {
	stamp string // sizes and mtimes of the files it was read from
	obs   *pcl.Observation
	sent  uint64 // the generation whose poll last returned obs; 0 not yet
}

// New checks the configuration. The directory is not touched: a harvest area that is not mounted is a
// failed poll, not a failed start.
func New(cfg Config) (*Spy, error) {
	if cfg.Dir == "" {
		return nil, apperr.Errorf(apperr.Invalid, "harvest spy: no directory")
	}
	if cfg.Catalogue == nil {
		cfg.Catalogue = pcl.DefaultCatalogue()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("harvest spy: %w", err)
	}
	return &Spy{
		cfg: cfg, log: cfg.Logger.With("source", pcl.SourceHarvest), clk: cfg.Clock,
		instance: hex.EncodeToString(id[:]),
		entries:  map[string]*entry{}, ignored: map[string]bool{}, problems: map[string]Problem{},
	}, nil
}

// Source names the spied system.
func (s *Spy) Source() pcl.Source { return pcl.SourceHarvest }

// Problems lists the files that could not be read at the last scan, by name.
func (s *Spy) Problems() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Problem, 0, len(s.problems))
	for _, p := range s.problems {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Problem) int { return strings.Compare(a.File, b.File) })
	return out
}

// Degraded summarises Problems as one error (nil when every file was read), for a health report that
// shows it without calling the source stale.
func (s *Spy) Degraded() error {
	ps := s.Problems()
	if len(ps) == 0 {
		return nil
	}
	return fmt.Errorf("harvest: %d unreadable file(s), first %s: %s", len(ps), ps[0].File, ps[0].Error)
}

// found is one upload's files as a scan met them.
type found struct {
	name            pcl.HarvestName
	db, txt, marker string // paths, "" when absent
	dbInfo, txtInfo fs.FileInfo
	markerInfo      fs.FileInfo
}

// Poll scans the harvest area. The cursor is "<instance>:<generation>" of the last poll whose result
// the runner kept: what was sent after it is sent again. The poll's view is taken before the walk
// starts: a file written while the walk or the reading of the .db files goes on may be missed by this
// poll, so nothing may conclude that it is absent from a later instant.
func (s *Spy) Poll(ctx context.Context, cursor string) (spy.Result, error) {
	view := s.clk.Now()
	uploads, err := s.scan(ctx)
	if err != nil {
		// The area itself failing (EOS unmounted, a network hiccup) may pass within the interval.
		if ctx.Err() == nil {
			err = httpx.MarkRetryable(err)
		}
		return spy.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acked := s.acked(cursor)
	s.gen++
	live := map[string]bool{}
	var out []pcl.Observation
	for _, u := range uploads {
		if err := ctx.Err(); err != nil {
			return spy.Result{}, fmt.Errorf("harvest spy: scan of %s interrupted: %w", s.cfg.Dir, err)
		}
		if u.db != "" && u.txt != "" {
			name := u.name.DB()
			live[name] = true
			out = s.collect(out, name, stampOf(u.dbInfo, u.txtInfo), acked, func() (*pcl.Observation, error) {
				return s.readPair(ctx, u)
			})
		}
		if u.marker != "" {
			name := u.name.Stem() + string(pcl.HarvestUploaded)
			live[name] = true
			out = s.collect(out, name, stampOf(u.markerInfo), acked, func() (*pcl.Observation, error) {
				return s.readMarker(u)
			})
		}
	}
	// Files that went away are forgotten, and so are their problems.
	for name := range s.entries {
		if !live[name] {
			delete(s.entries, name)
			delete(s.problems, name)
		}
	}
	return spy.Result{Observations: out, Cursor: s.instance + ":" + strconv.FormatUint(s.gen, 10), View: view}, nil
}

// acked is the generation the cursor acknowledges; a cursor of another process acknowledges nothing.
func (s *Spy) acked(cursor string) uint64 {
	inst, g, ok := strings.Cut(cursor, ":")
	if !ok || inst != s.instance {
		return 0
	}
	n, err := strconv.ParseUint(g, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// collect reads a file again only when its stamp changed, and sends its observation unless a poll the
// runner acknowledged already did.
func (s *Spy) collect(out []pcl.Observation, name, stamp string, acked uint64, read func() (*pcl.Observation, error)) []pcl.Observation {
	e := s.entries[name]
	if e == nil || e.stamp != stamp {
		e = &entry{stamp: stamp}
		s.entries[name] = e
		o, err := read()
		switch {
		case err != nil:
			s.log.Warn("harvest file unreadable; other files are still observed", "file", name, "err", err)
			s.problems[name] = Problem{File: name, Error: err.Error(), Since: s.clk.Now()}
		default:
			delete(s.problems, name)
			e.obs = o
		}
	}
	if e.obs == nil || (e.sent != 0 && e.sent <= acked) {
		return out
	}
	e.sent = s.gen
	o := *e.obs
	o.Seen = s.clk.Now()
	return append(out, o)
}

func stampOf(infos ...fs.FileInfo) string {
	var b strings.Builder
	for _, fi := range infos {
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// scan walks the tree and groups the harvest files by upload.
func (s *Spy) scan(ctx context.Context) ([]*found, error) {
	st, err := os.Stat(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("harvest spy: harvest area %s: %w", s.cfg.Dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("harvest spy: harvest area %s is not a directory", s.cfg.Dir)
	}
	byStem := map[string]*found{}
	walk := func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == s.cfg.Dir {
				return err
			}
			// One unreadable subdirectory must not blind the spy to the rest.
			s.log.Warn("harvest area: cannot read", "path", path, "err", err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		n, perr := pcl.ParseHarvestName(d.Name())
		if perr != nil {
			s.noteIgnored(path, perr)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // gone between listing and stat: the next scan sees it settle
		}
		f := byStem[n.Stem()]
		if f == nil {
			f = &found{name: n}
			byStem[n.Stem()] = f
		}
		switch n.Ext {
		case pcl.HarvestDB:
			f.db, f.dbInfo = path, info
		case pcl.HarvestMetadata:
			f.txt, f.txtInfo = path, info
		case pcl.HarvestUploaded:
			f.marker, f.markerInfo = path, info
		}
		return nil
	}
	if err := filepath.WalkDir(s.cfg.Dir, walk); err != nil {
		return nil, fmt.Errorf("harvest spy: scanning %s: %w", s.cfg.Dir, err)
	}
	out := make([]*found, 0, len(byStem))
	for _, f := range byStem {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *found) int { return strings.Compare(a.name.Stem(), b.name.Stem()) })
	return out, nil
}

func (s *Spy) noteIgnored(path string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ignored[path] {
		s.ignored[path] = true
		s.log.Debug("harvest area: ignoring a file that is not a harvest file", "path", path, "reason", err)
	}
}

// readPair reads an upload's metadata and its .db's IOVs of the input tag. It returns nil, nil for an
// input tag the catalogue does not know (logged, not an error: the catalogue decides what is watched).
func (s *Spy) readPair(ctx context.Context, u *found) (*pcl.Observation, error) {
	n := u.name
	w, _, ok := s.cfg.Catalogue.ByInputTag(n.InputTag)
	if !ok {
		s.log.Warn("harvest file of an input tag not in the catalogue; skipped", "file", n.DB(), "input_tag", n.InputTag)
		return nil, nil
	}
	data, err := readLimited(u.txt, MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	md, err := ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.txt, err)
	}
	meta, prep := md.Prod, false
	if meta == nil {
		meta, prep = md.Prep, true
	}
	if meta.InputTag != n.InputTag {
		return nil, fmt.Errorf("%s: metadata inputTag %q differs from the file name's %q", u.txt, meta.InputTag, n.InputTag)
	}
	payloads, err := readPayloads(ctx, u.db, n.InputTag)
	if err != nil {
		return nil, err
	}
	o := &pcl.Observation{
		Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: n.Run, At: u.dbInfo.ModTime().UTC(),
		Workflow: w.Name, InputTag: n.InputTag, File: n.DB(), Destinations: meta.DestinationTags,
		Payloads: payloads, Prep: prep,
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", u.db, err)
	}
	return o, nil
}

// readPayloads reads the input tag's IOVs from a harvested .db, as the snapshot of the file shows them.
func readPayloads(ctx context.Context, path, tag string) ([]pcl.IOV, error) {
	db, err := conddbv2.OpenFile(ctx, path, conddbv2.Options{Immutable: true})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.IOVs(ctx, tag, time.Time{}, 0)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no IOV of input tag %s", path, tag)
	}
	snap := conddbv2.Snapshot(rows, time.Time{})
	out := make([]pcl.IOV, len(snap))
	for i, r := range snap {
		out[i] = pcl.IOV{Since: r.Since, Payload: r.Payload, Inserted: r.Inserted}
	}
	return out, nil
}

// readMarker reads a .txt.uploaded marker. Tier-0 copies into it the metadata line it uploaded with, so a
// marker whose content starts with the prep key records a validation upload.
func (s *Spy) readMarker(u *found) (*pcl.Observation, error) {
	n := u.name
	w, _, ok := s.cfg.Catalogue.ByInputTag(n.InputTag)
	if !ok {
		s.log.Warn("upload marker of an input tag not in the catalogue; skipped", "file", filepath.Base(u.marker), "input_tag", n.InputTag)
		return nil, nil
	}
	data, err := readLimited(u.marker, MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	o := &pcl.Observation{
		Source: pcl.SourceHarvest, Kind: pcl.KindUploadMarker, Run: n.Run, At: u.markerInfo.ModTime().UTC(),
		Workflow: w.Name, InputTag: n.InputTag, File: n.DB(), Prep: markerSaysPrep(data),
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", u.marker, err)
	}
	return o, nil
}

func markerSaysPrep(data []byte) bool {
	t := strings.ToLower(strings.TrimSpace(string(data)))
	return strings.HasPrefix(t, strings.ToLower(prepKey)) || t == "prep" || t == "validation"
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
