package harvest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
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
	// Lookback: files modified longer ago than this (on Clock) are neither read nor remembered, so the
	// spy's memory grows with the runs still watched, not with the area (default 14 days, the agency's
	// lookback).
	Lookback time.Duration
	// FullRescan is how often (in real time) every directory is listed and every file stat'ed whatever
	// the directories' modification times say: the safety net for what they cannot show (a file
	// rewritten in place, a clock gone wrong). Default 6h.
	FullRescan time.Duration
	// MtimeSlack is how much older than a listing's start a directory's (or file's) modification time
	// must be for the listing to be trusted while the time does not move: the file system's time
	// granularity plus the file server's clock offset. Default 2s.
	MtimeSlack time.Duration
	// Notifications, when NotificationsAuto, has the scan trust the kernel's change notifications
	// where the area's file system is local (notify.go; Linux only): a watched directory is not listed
	// again when its time moves, only the names the notifications named are stat'ed. NotificationsOff,
	// and the zero value, keep the modification time rules everywhere.
	Notifications Notifications
}

// Defaults of Config.
const (
	DefaultLookback   = 14 * 24 * time.Hour
	DefaultFullRescan = 6 * time.Hour
	DefaultMtimeSlack = 2 * time.Second
)

// Spy watches one harvest area.
type Spy struct {
	cfg      Config
	log      *slog.Logger
	clk      clock.Clock
	instance string // tells this process's cursors from another's

	wall func() time.Time // real time, which file systems stamp directories with

	scanMu   sync.Mutex // one scan at a time; guards dirs, lastFull, last
	dirs     map[string]*dirState
	lastFull time.Time // wall clock at the start of the last full rescan
	last     scanStats
	// found is the last scan's grouping of the remembered files, reused while a scan finds nothing
	// changed (no directory listed, no young file's size or time moved, nothing removed).
	found []*found

	// The change notifications (notify.go), under scanMu.
	statfs          func(path string) (int64, error) // statfs(2)'s f_type; tests fake it
	trk             *tracker                         // nil: directory times decide everywhere
	notesRoot       *dirID                           // the root the trust was decided for; nil: not yet
	carry           *changes                         // what an interrupted scan drained and did not apply
	watchFailLogged bool

	watchMu  sync.Mutex
	dirty    map[string]bool // directories notifications named since the last scan
	dirtyAll bool            // notifications were lost: rescan everything

	mu       sync.Mutex
	gen      uint64
	entries  map[string]*entry // by file name (.db for pairs, .txt.uploaded for markers)
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
	stamp stamp // sizes and mtimes of the files it was read from
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
	switch cfg.Notifications {
	case "", NotificationsOff, NotificationsAuto:
	default:
		return nil, apperr.Errorf(apperr.Invalid, "harvest spy: notifications %q, want %q or %q", cfg.Notifications, NotificationsAuto, NotificationsOff)
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
		key string
	}{{&cfg.Lookback, DefaultLookback, "lookback"}, {&cfg.FullRescan, DefaultFullRescan, "full rescan"}, {&cfg.MtimeSlack, DefaultMtimeSlack, "mtime slack"}} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return nil, apperr.Errorf(apperr.Invalid, "harvest spy: negative %s %s", d.key, *d.v)
		}
	}
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("harvest spy: %w", err)
	}
	return &Spy{
		cfg: cfg, log: cfg.Logger.With("source", pcl.SourceHarvest), clk: cfg.Clock,
		instance: hex.EncodeToString(id[:]), wall: time.Now, statfs: fsTypeOf,
		dirs: map[string]*dirState{}, dirty: map[string]bool{},
		entries: map[string]*entry{}, problems: map[string]Problem{},
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

// found is one upload's files as the scan remembers them.
type found struct {
	name            pcl.HarvestName
	stem            string
	db, txt, marker *fileRec // nil when absent
}

// Poll scans the harvest area, incrementally (scan.go). The cursor is "<instance>:<generation>" of the
// last poll whose result the runner kept: what was sent after it is sent again. The poll's view is
// taken before the walk starts: a file written while the walk or the reading of the .db files goes on
// may be missed by this poll, so nothing may conclude that it is absent from a later instant; the next
// poll lists its directory again (its modification time moved, or was too recent to trust).
func (s *Spy) Poll(ctx context.Context, cursor string) (spy.Result, error) {
	view := s.clk.Now()
	uploads, changed, err := s.scan(ctx, view)
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
	if !changed && acked == s.gen && s.gen > 0 {
		// The runner holds what the last poll sent, and the area is as that poll found it: nothing to
		// read or send, and the walk just made vouches for the view.
		return spy.Result{Cursor: cursor, View: view}, nil
	}
	s.gen++
	live := map[string]bool{}
	var out []pcl.Observation
	for _, u := range uploads {
		if err := ctx.Err(); err != nil {
			return spy.Result{}, fmt.Errorf("harvest spy: scan of %s interrupted: %w", s.cfg.Dir, err)
		}
		if u.db != nil && u.txt != nil {
			name := u.db.base
			live[name] = true
			out = s.collect(out, name, stampOf(u.db, u.txt), acked, func() (*pcl.Observation, error) {
				return s.readPair(ctx, u)
			})
		}
		if u.marker != nil {
			name := u.marker.base
			live[name] = true
			out = s.collect(out, name, stampOf(u.marker), acked, func() (*pcl.Observation, error) {
				return s.readMarker(u)
			})
		}
	}
	// Files that went away, or aged past the lookback, are forgotten, and so are their problems.
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
func (s *Spy) collect(out []pcl.Observation, name string, stamp stamp, acked uint64, read func() (*pcl.Observation, error)) []pcl.Observation {
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

// stamp is the sizes and modification times of up to two files.
type stamp [2]struct{ size, mtime int64 }

func stampOf(files ...*fileRec) stamp {
	var st stamp
	for i, f := range files {
		st[i].size, st[i].mtime = f.size, f.mtime.UnixNano()
	}
	return st
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
	data, err := readLimited(u.txt.path, MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	md, err := ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.txt.path, err)
	}
	meta, prep := md.Prod, false
	if meta == nil {
		meta, prep = md.Prep, true
	}
	if meta.InputTag != n.InputTag {
		return nil, fmt.Errorf("%s: metadata inputTag %q differs from the file name's %q", u.txt.path, meta.InputTag, n.InputTag)
	}
	payloads, err := readPayloads(ctx, u.db.path, n.InputTag)
	if err != nil {
		return nil, err
	}
	o := &pcl.Observation{
		Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: n.Run, At: u.db.mtime.UTC(),
		Workflow: w.Name, InputTag: n.InputTag, File: n.DB(), Destinations: meta.DestinationTags,
		Payloads: payloads, Prep: prep,
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", u.db.path, err)
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
		s.log.Warn("upload marker of an input tag not in the catalogue; skipped", "file", filepath.Base(u.marker.path), "input_tag", n.InputTag)
		return nil, nil
	}
	data, err := readLimited(u.marker.path, MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	o := &pcl.Observation{
		Source: pcl.SourceHarvest, Kind: pcl.KindUploadMarker, Run: n.Run, At: u.marker.mtime.UTC(),
		Workflow: w.Name, InputTag: n.InputTag, File: n.DB(), Prep: markerSaysPrep(data),
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", u.marker.path, err)
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
