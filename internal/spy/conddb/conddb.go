package conddb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
)

// Config builds a condition DB spy.
type Config struct {
	// DSN is the database: sqlite:PATH or postgres://...
	DSN string
	// Tags, when set, is the fixed list of tags to follow (probe's --tag); a tag missing from the
	// database is then an error. Otherwise the tags come from Hints.WatchedTags, and missing ones are
	// skipped quietly (a destination tag may not exist yet).
	Tags  []string
	Hints spy.Hints
	// PageSize bounds the rows read per query (default 1000); MaxPerPoll bounds the observations of one
	// poll (default 20000): the rest comes on the next poll.
	PageSize   int
	MaxPerPoll int
	// Lookback is how far before the newest insertion time seen each read starts again (default 2m;
	// negative: 0, only rows sharing the newest timestamp are re-checked).
	Lookback time.Duration
	Logger   *slog.Logger
	Clock    clock.Clock
}

// Spy follows tags of one condition DB.
type Spy struct {
	cfg Config
	log *slog.Logger
	clk clock.Clock

	mu sync.Mutex
	db *conddbv2.DB // opened on first use, dropped after an error so the next poll reopens it

	// counts are the watched tags' IOV counts as of the last poll that read each tag to its end, valid
	// for the cursor that poll returned (countsFor): a later poll given that cursor skips the tags whose
	// count did not move, since they have no row it has not seen. Any other cursor (a poll whose
	// observations were not stored, a restart) and every fullEvery-th poll read every tag again.
	counts    map[string]conddbv2.IOVCount
	floorsOf  map[string]uint64 // the floors the counts were taken above (a tag absent: all its rows)
	countsFor string
	polls     int
	// version is the file's data version read before the counts were (SQLite only): a poll that finds
	// it unchanged, for the same cursor, with every watched tag counted, has nothing to read at all.
	// counted is how many polls counted the IOVs (tests).
	version conddbv2.DataVersion
	counted int
	lowest  uint32 // the run the floors were taken at (0: no hints, no floors; see lowestOpenRun)
}

// fullEvery is how often a poll reads every watched tag whatever their counts say: the safety net for
// what a count cannot show (a row deleted and another added between two polls, which CondDB's
// append-only IOVs do not do).
const fullEvery = 60

// New checks the configuration. It does not touch the database: a source that is down at start is a
// failed poll, not a failed start.
func New(cfg Config) (*Spy, error) {
	if cfg.DSN == "" {
		return nil, apperr.Errorf(apperr.Invalid, "conddb spy: no DSN (want sqlite:PATH or postgres://...)")
	}
	if len(cfg.Tags) == 0 && cfg.Hints == nil {
		return nil, apperr.Errorf(apperr.Invalid, "conddb spy: neither tags nor hints to choose the watched tags")
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	if cfg.MaxPerPoll <= 0 {
		cfg.MaxPerPoll = 20000
	}
	if cfg.Lookback == 0 {
		cfg.Lookback = 2 * time.Minute
	} else if cfg.Lookback < 0 {
		cfg.Lookback = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Spy{cfg: cfg, log: cfg.Logger.With("source", pcl.SourceCondDB), clk: cfg.Clock}, nil
}

// Source names the spied system.
func (s *Spy) Source() pcl.Source { return pcl.SourceCondDB }

// Close releases the database handle.
func (s *Spy) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// cursor is the persisted position: per tag, the newest insertion time seen and the rows seen since
// that time minus the look-back.
type cursor struct {
	Tags map[string]*tagCursor `json:"tags"`
}

type tagCursor struct {
	Latest time.Time `json:"latest"`
	Seen   []rowKey  `json:"seen,omitempty"`
	// Floor is the since from which the tag was read (0: from the first row; see floors). Rows below
	// it were never looked at, so a lower floor later starts the tag's reading again from the start.
	Floor uint64 `json:"floor,omitempty"`
}

// rowKey is an IOV row's primary key within its tag.
type rowKey struct {
	Since    uint64    `json:"since"`
	Inserted time.Time `json:"inserted"`
}

func (c *tagCursor) has(r conddbv2.IOV) bool {
	return slices.ContainsFunc(c.Seen, func(k rowKey) bool { return k.Since == r.Since && k.Inserted.Equal(r.Inserted) })
}

// add records a row and forgets the ones that fell out of the window.
func (c *tagCursor) add(r conddbv2.IOV, lookback time.Duration) {
	if r.Inserted.After(c.Latest) {
		c.Latest = r.Inserted
	}
	c.Seen = append(c.Seen, rowKey{Since: r.Since, Inserted: r.Inserted})
	from := c.Latest.Add(-lookback)
	c.Seen = slices.DeleteFunc(c.Seen, func(k rowKey) bool { return k.Inserted.Before(from) })
}

func (s *Spy) parseCursor(raw string) *cursor {
	c := &cursor{Tags: map[string]*tagCursor{}}
	if raw == "" {
		return c
	}
	if err := json.Unmarshal([]byte(raw), c); err != nil || c.Tags == nil {
		// A damaged cursor must not wedge the spy; reading again from the start only repeats facts the
		// store already has.
		s.log.Warn("conddb cursor unreadable, reading the watched tags from the start", "err", err)
		return &cursor{Tags: map[string]*tagCursor{}}
	}
	return c
}

// Poll reads the rows appended to every watched tag since the cursor.
func (s *Spy) Poll(ctx context.Context, raw string) (spy.Result, error) {
	tags, explicit, err := s.tags(ctx)
	if err != nil {
		return spy.Result{}, err
	}
	db, err := s.open(ctx)
	if err != nil {
		return spy.Result{}, err
	}
	lowest, err := s.lowestOpenRun(ctx)
	if err != nil {
		return spy.Result{}, err
	}
	// Read before the counts: a commit after this read moves the version the next poll compares.
	version, err := db.DataVersion(ctx)
	if err != nil {
		s.drop(db)
		return spy.Result{}, transient(fmt.Errorf("conddb spy: %w", err))
	}
	s.mu.Lock()
	known := s.counts
	if s.countsFor != raw || s.polls%fullEvery == 0 {
		known = nil
	}
	s.polls++
	// A lower open run than the floors were taken at (or none: no floor) may need rows never read.
	floorsHold := s.lowest != 0 && lowest >= s.lowest || s.lowest == 0 && lowest == 0
	unchanged := known != nil && floorsHold && version != (conddbv2.DataVersion{}) && version == s.version
	for _, tag := range tags {
		if _, ok := known[tag]; !ok {
			unchanged = false // a tag not read to its end for this cursor, or newly watched
		}
	}
	s.mu.Unlock()
	if unchanged {
		// No commit since the counts were read, and they covered every tag for this cursor: the
		// file holds no row the cursor has not seen. The view is this poll's, taken after the
		// version was read.
		return spy.Result{Cursor: raw}, nil
	}
	floors, infos, err := s.floors(ctx, db, tags, lowest)
	if err != nil {
		s.drop(db)
		return spy.Result{}, transient(fmt.Errorf("conddb spy: %w", err))
	}
	counts, err := db.IOVCountsFrom(ctx, tags, floors)
	if err != nil {
		s.drop(db)
		return spy.Result{}, transient(fmt.Errorf("conddb spy: %w", err))
	}
	s.mu.Lock()
	s.counted++
	knownFloors := s.floorsOf
	s.mu.Unlock()
	// A tag is read when it may hold a row the cursor has not seen: its count moved, or it was not read
	// to its end for this cursor. (A tag in known had its cursor in raw, which that poll returned.)
	next := map[string]conddbv2.IOVCount{}
	var read []string
	for _, tag := range tags {
		f, floored := floors[tag]
		kf, knownFloored := knownFloors[tag]
		if c, ok := known[tag]; ok && c == counts[tag] && f == kf && floored == knownFloored {
			next[tag] = c
			continue
		}
		read = append(read, tag)
	}
	if len(read) == 0 {
		s.remember(next, floors, raw, version, lowest)
		return spy.Result{Cursor: raw}, nil
	}
	cur := s.parseCursor(raw)
	// The TAG rows of the tags read, in one query (already read for the floors when there are open
	// runs); the others' rows are not needed this poll (each IOV observation carries its tag's
	// synchronization as it is when the row is read).
	if infos == nil {
		if infos, err = db.TagInfos(ctx, read); err != nil {
			s.drop(db)
			return spy.Result{}, transient(fmt.Errorf("conddb spy: %w", err))
		}
	}
	var out []pcl.Observation
	for _, tag := range read {
		budget := s.cfg.MaxPerPoll - len(out)
		if budget <= 0 {
			break
		}
		info, ok := infos[tag]
		if !ok {
			if !explicit {
				s.log.Debug("watched tag not in the condition DB", "tag", tag)
				next[tag] = counts[tag] // read again once it has rows
				continue
			}
			return spy.Result{}, apperr.Errorf(apperr.NotFound, "conddb spy: condition DB %s has no tag %s", db.Name(), tag)
		}
		tc := cur.Tags[tag]
		if tc == nil {
			tc = &tagCursor{}
		}
		if f := floors[tag]; f < tc.Floor {
			// The floor went down (a lower run open again, a restart with other open runs): the rows
			// between the floors were never read, whenever they were inserted. Read the tag again from
			// the new floor; what was sent already is sent again, and the store keeps it once.
			tc = &tagCursor{}
		}
		tc.Floor = floors[tag]
		obs, complete, err := s.pollTag(ctx, db, info, tc, budget, floors[tag])
		if err != nil {
			s.drop(db)
			return spy.Result{}, transient(fmt.Errorf("conddb spy: %w", err))
		}
		out = append(out, obs...)
		cur.Tags[tag] = tc
		if complete {
			// Counted before the read: a row added since makes the next poll read the tag again. A
			// tag without rows counts as the zero count.
			next[tag] = counts[tag]
		}
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return spy.Result{}, fmt.Errorf("conddb spy: encoding cursor: %w", err)
	}
	s.remember(next, floors, string(b), version, lowest)
	return spy.Result{Observations: out, Cursor: string(b)}, nil
}

// remember keeps the counts of the tags read to their end and the floors they were counted above, for
// the cursor the poll returns, with the data version read before them.
func (s *Spy) remember(counts map[string]conddbv2.IOVCount, floors map[string]uint64, cursor string, version conddbv2.DataVersion, lowest uint32) {
	s.mu.Lock()
	s.counts, s.floorsOf, s.countsFor, s.version, s.lowest = counts, floors, cursor, version, lowest
	s.mu.Unlock()
}

// lowestOpenRun is the run the floors are taken at: the lowest run the hints say is open, 0 without
// hints (every row is looked at). With hints and no run open it is the highest run there can be, so
// each tag is read from its newest IOV up: a run that opens later is at or above its run number, or,
// if it is below, it lowers the floor and the tag is read again from there. Between fills, with every
// run released, a poll costs the newest rows, not the tags' years.
func (s *Spy) lowestOpenRun(ctx context.Context) (uint32, error) {
	if s.cfg.Hints == nil {
		return 0, nil
	}
	runs, err := s.cfg.Hints.OpenRuns(ctx)
	if err != nil {
		return 0, fmt.Errorf("conddb spy: open runs: %w", err)
	}
	lowest := uint32(math.MaxUint32)
	for _, r := range runs {
		if r.Run > 0 && r.Run < lowest {
			lowest = r.Run
		}
	}
	return lowest, nil
}

// floors are, per run- or lumi-based tag, the since of the IOV in effect at the lowest open run (0:
// none). No
// row below it can be in effect for an open run (PromptReco of run N reads the IOV with the highest
// since at or below N, and the floor's own row, or a newer one of its since, is at or above it), so
// the counts and reads look at the rows from the floor up: the open work, not the tag's years of
// history (with no run open, lowest is the highest run: see lowestOpenRun). Without hints, and for tags
// of other time types (a timestamp since is not a run), there is no floor and every row is looked at. infos are the TAG rows read for it, nil when
// none were needed.
func (s *Spy) floors(ctx context.Context, db *conddbv2.DB, tags []string, lowest uint32) (map[string]uint64, map[string]conddbv2.TagInfo, error) {
	if lowest == 0 {
		return nil, nil, nil
	}
	infos, err := db.TagInfos(ctx, tags)
	if err != nil {
		return nil, nil, err
	}
	floors := map[string]uint64{}
	for _, tag := range tags {
		info, ok := infos[tag]
		if !ok || (info.TimeType != pcl.TimeRun && info.TimeType != pcl.TimeLumi) {
			continue
		}
		at, ok, err := db.InEffect(ctx, tag, pcl.SinceOfRun(info.TimeType, lowest))
		if err != nil {
			return nil, nil, err
		}
		if ok {
			floors[tag] = at
		}
	}
	return floors, infos, nil
}

func (s *Spy) tags(ctx context.Context) (tags []string, explicit bool, err error) {
	if len(s.cfg.Tags) > 0 {
		return s.cfg.Tags, true, nil
	}
	tags, err = s.cfg.Hints.WatchedTags(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("conddb spy: watched tags: %w", err)
	}
	tags = slices.Clone(tags)
	slices.Sort(tags)
	return slices.Compact(tags), false, nil
}

func (s *Spy) open(ctx context.Context) (*conddbv2.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		return s.db, nil
	}
	db, err := conddbv2.Open(ctx, s.cfg.DSN)
	if err != nil {
		return nil, transient(fmt.Errorf("conddb spy: %w", err))
	}
	s.db = db
	return db, nil
}

// transient marks database errors worth retrying within the poll interval (a locked file, a dropped
// connection); a wrong schema, a bad DSN or a missing explicit tag will fail the same way again.
func transient(err error) error {
	if apperr.Is(err, apperr.Invalid) || apperr.Is(err, apperr.NotFound) || errors.Is(err, context.Canceled) {
		return err
	}
	return httpx.MarkRetryable(err)
}

func (s *Spy) drop(db *conddbv2.DB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == db {
		s.db.Close()
		s.db = nil
	}
}

// pollTag reads one tag's new rows page by page, advancing tc as it goes.
// complete says it read the tag to its end (the budget did not cut it short).
func (s *Spy) pollTag(ctx context.Context, db *conddbv2.DB, info conddbv2.TagInfo, tc *tagCursor, budget int, floor uint64) (out []pcl.Observation, complete bool, err error) {
	tag := info.Name
	for len(out) < budget {
		from := time.Time{}
		if !tc.Latest.IsZero() {
			from = tc.Latest.Add(-s.cfg.Lookback)
		}
		// The rows already seen come back too; asking for that many more guarantees progress.
		limit := s.cfg.PageSize + len(tc.Seen)
		rows, err := db.IOVsFrom(ctx, tag, from, floor, limit)
		if err != nil {
			return nil, false, err
		}
		for _, r := range rows {
			if tc.has(r) {
				continue
			}
			o, err := s.observe(ctx, db, info, r)
			if err != nil {
				return nil, false, err
			}
			out = append(out, o)
			tc.add(r, s.cfg.Lookback)
		}
		if len(rows) < limit {
			return out, true, nil
		}
	}
	return out, false, nil
}

func (s *Spy) observe(ctx context.Context, db *conddbv2.DB, info conddbv2.TagInfo, r conddbv2.IOV) (pcl.Observation, error) {
	o := pcl.Observation{
		Source:   pcl.SourceCondDB,
		Kind:     pcl.KindIOV,
		Run:      pcl.RunOfSince(info.TimeType, r.Since),
		At:       r.Inserted,
		Seen:     s.clk.Now(),
		Tag:      info.Name,
		Since:    r.Since,
		TimeType: info.TimeType,
		Inserted: r.Inserted,
		Payload:  r.Payload,
		// Whether the tag gates PromptReco follows from its synchronization; each row carries it, so
		// that the reconcile of a run learns it from the IOVs it already reads.
		Synchronization: info.Synchronization,
	}
	// The IOV valid just below, as the DB stood when this row went in: an unchanged payload there means
	// the upload changed nothing.
	prev, ok, err := db.PreviousIOV(ctx, info.Name, r.Since, r.Inserted)
	if err != nil {
		return o, err
	}
	if ok {
		o.Previous = prev.Payload
	}
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("%s: IOV since %d of %s: %w", db.Name(), r.Since, info.Name, err)
	}
	return o, nil
}
