package harvest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The incremental scan. A poll must cost in proportion to what changed in the area, not to its size
// (a year of data taking is about 120,000 files in one year folder), so the spy remembers each
// directory's listing with the directory's modification time, and lists a directory again only when
// that time moved. Creating, removing or renaming a file in a directory moves its time; writing into
// an existing file does not, which is why the files still young enough to change are stat'ed again
// whenever their directory is listed, and why a slow full rescan stays as the safety net.
//
// Modification times are coarse: many file systems keep seconds, and even nanosecond ones advance in
// clock ticks, so a file created in the same tick as the listing, just after it, leaves the time
// unchanged. A listing is therefore trusted for the next poll only when the directory's time was
// older than the listing's start by more than the slack (Config.MtimeSlack, also covering the file
// server's clock against ours); otherwise the directory is listed again, until one listing is
// settled. The same rule applies to a young file's own time.
//
// Memory is bounded by the lookback: a file whose modification time is older than the lookback
// (on the spy's clock, the clock its view is on) is neither read nor remembered, and each directory
// keeps a floor below which names not remembered are old files, skipped without a stat when the
// directory is listed again. A new file of a run below the floor (a re-harvest of a run older than
// the lookback) is therefore seen only by the next full rescan; the agency no longer watches such a
// run anyway.
//
// Where the kernel's change notifications are trusted (notify.go), a directory watched before its
// listing is exempt from these time rules: the names its notifications named are stat'ed, with the
// same rules as a listing, and nothing else.

// fileRec is one harvest file as the last stat showed it.
type fileRec struct {
	path    string
	base    string // the file's name
	stem    string // name.Stem(), built once
	name    pcl.HarvestName
	size    int64
	mtime   time.Time
	settled bool // its mtime was older than the slack before the stat: unchanged unless its directory changes
}

// dirState is what the spy remembers of one directory of the area.
type dirState struct {
	mtime    time.Time // the directory's modification time, read before it was listed
	dev, ino uint64    // the directory listed (Linux; 0 elsewhere)
	settled  bool      // mtime was older than the listing's start by more than the slack
	floor    uint32    // names of runs below it that are not in files are old files
	files    map[string]*fileRec
	subdirs  []string
	ignored  map[string]bool // names that are not harvest files, logged once
	// watched: a tracker's watch was added before the listing, so the listing plus the notifications
	// drained since is the directory's content (notify.go).
	watched bool
	oldest  time.Time // no file in files is older (a lower bound): when to age files out without a listing
	oldMax  uint32    // the highest run of an old file the listing or a notification saw
}

// scanStats count what one scan did, for tests and benchmarks.
type scanStats struct {
	listed, reused, stats int
	full                  bool
}

// scan walks the area incrementally and groups the remembered harvest files by upload. view is the
// poll's view time: files older than view minus the lookback are left out. changed says whether the
// walk found anything that may differ from the previous scan (the grouping is then the previous one).
func (s *Spy) scan(ctx context.Context, view time.Time) (_ []*found, changed bool, _ error) {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	root := s.cfg.Dir
	st, err := os.Stat(root)
	if err != nil {
		return nil, false, fmt.Errorf("harvest spy: harvest area %s: %w", root, err)
	}
	if !st.IsDir() {
		return nil, false, fmt.Errorf("harvest spy: harvest area %s is not a directory", root)
	}
	start := s.wall()
	rootID := idOf(st)
	ch := s.notes(root, rootID)
	s.watchMu.Lock()
	dirty, full := s.dirty, s.dirtyAll
	s.dirty, s.dirtyAll = map[string]bool{}, false
	s.watchMu.Unlock()
	full = full || s.lastFull.IsZero() || start.Sub(s.lastFull) >= s.cfg.FullRescan || (ch != nil && ch.all)
	w := &walker{s: s, ctx: ctx, start: start, cutoff: view.Add(-s.cfg.Lookback), full: full, dirty: dirty,
		ch: ch, visited: map[string]bool{}}
	w.stats.full = full
	if err := w.visit(root, rootID); err != nil {
		// The walk did not finish: what the notifications asked for is still to do, and so is the
		// rescan.
		if ch != nil {
			s.carry = ch
		}
		s.watchMu.Lock()
		for d := range dirty {
			s.dirty[d] = true
		}
		s.dirtyAll = s.dirtyAll || full
		s.watchMu.Unlock()
		return nil, false, err
	}
	for p := range s.dirs {
		if !w.visited[p] {
			delete(s.dirs, p) // removed, or no longer reachable
			if s.trk != nil {
				s.trk.unwatch(p)
			}
			w.changed = true
		}
	}
	if full {
		s.lastFull = start
	}
	s.last = w.stats
	if !w.changed && !full && s.found != nil {
		return s.found, false, nil
	}
	byStem := map[string]*found{}
	for _, d := range s.dirs {
		for _, f := range d.files {
			g := byStem[f.stem]
			if g == nil {
				g = &found{name: f.name, stem: f.stem}
				byStem[f.stem] = g
			}
			switch f.name.Ext {
			case pcl.HarvestDB:
				g.db = f
			case pcl.HarvestMetadata:
				g.txt = f
			case pcl.HarvestUploaded:
				g.marker = f
			}
		}
	}
	out := make([]*found, 0, len(byStem))
	for _, f := range byStem {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *found) int { return strings.Compare(a.stem, b.stem) })
	s.found = out
	return out, true, nil
}

// walker is one scan's walk.
type walker struct {
	s       *Spy
	ctx     context.Context
	start   time.Time // wall clock before the first directory was read
	cutoff  time.Time // spy clock: files modified before it are older than the lookback
	full    bool
	dirty   map[string]bool // directories a notification named since the last scan
	ch      *changes        // what the tracker's drain asks for; nil: notifications are not trusted
	visited map[string]bool
	stats   scanStats
	changed bool // a directory was listed, or a young file's size or time moved or it went away
}

// settledAt says whether a modification time is old enough, against the walk's start, that a later
// change must move it.
func (w *walker) settledAt(mtime time.Time) bool {
	return mtime.Before(w.start.Add(-w.s.cfg.MtimeSlack))
}

// visit brings one directory's state up to date, and its subdirectories'. id is the directory's
// modification time (and device and inode), read before it is listed.
func (w *walker) visit(path string, id dirID) error {
	if err := w.ctx.Err(); err != nil {
		return fmt.Errorf("harvest spy: scan of %s interrupted: %w", w.s.cfg.Dir, err)
	}
	w.visited[path] = true
	mtime := id.mtime
	old := w.s.dirs[path]
	if w.ch != nil && !w.full && old != nil && old.watched && old.dev == id.dev && old.ino == id.ino && !w.ch.relist[path] && w.s.trk.watched(path) {
		// Watched since before its listing: the notifications say what changed, whatever its time.
		w.stats.reused++
		w.applyNotes(path, old)
		// As if listed when the walk began (the drain came before it), should the directory times
		// decide again (the tracker closed).
		old.mtime, old.settled = mtime, w.settledAt(mtime)
		return w.visitSubdirs(path, old.subdirs)
	}
	if !w.full && old != nil && !old.watched && old.settled && old.mtime.Equal(mtime) && !w.dirty[path] && (w.ch == nil || !w.ch.relist[path]) {
		w.stats.reused++
		w.restatYoung(old)
		return w.visitSubdirs(path, old.subdirs)
	}
	watched := w.watchDir(path) // before the listing: what changes after it is in the queue
	dh, err := openDir(path)
	var names []string
	if err == nil {
		defer dh.close()
		names, err = dh.names()
	}
	if err != nil {
		if path == w.s.cfg.Dir {
			return fmt.Errorf("harvest spy: scanning %s: %w", path, err)
		}
		// One unreadable subdirectory must not blind the spy to the rest.
		w.s.log.Warn("harvest area: cannot read", "path", path, "err", err)
		w.visited[path] = false
		return nil
	}
	w.stats.listed++
	w.changed = true
	d := &dirState{mtime: mtime, dev: id.dev, ino: id.ino, settled: w.settledAt(mtime), watched: watched,
		files: map[string]*fileRec{}, ignored: map[string]bool{}}
	var (
		minYoung, maxOld uint32
		anyYoung         bool
	)
	for _, name := range names {
		n, perr := pcl.ParseHarvestName(name)
		if perr != nil {
			// A subdirectory (a year's folder), or a name to ignore.
			fi, err := dh.lstat(name)
			w.stats.stats++
			switch {
			case err != nil:
				continue
			case fi.dir:
				d.subdirs = append(d.subdirs, name)
				continue
			case !fi.regular:
				continue
			}
			if old == nil || !old.ignored[name] {
				w.s.log.Debug("harvest area: ignoring a file that is not a harvest file", "path", filepath.Join(path, name), "reason", perr)
			}
			d.ignored[name] = true
			continue
		}
		if !w.full && old != nil && old.files[name] == nil && n.Run < old.floor {
			continue // an old file, below the lookback when the directory was last read in full
		}
		fi, err := dh.lstat(name)
		w.stats.stats++
		if err != nil {
			continue // gone between listing and stat: the next scan sees it settle
		}
		if !fi.regular {
			if fi.dir {
				d.subdirs = append(d.subdirs, name)
			}
			continue
		}
		if fi.mtime.Before(w.cutoff) {
			maxOld = max(maxOld, n.Run)
			continue
		}
		if !anyYoung || n.Run < minYoung {
			minYoung = n.Run
		}
		anyYoung = true
		f := &fileRec{base: name, name: n, size: fi.size, mtime: fi.mtime, settled: w.settledAt(fi.mtime)}
		if p := old.file(name); p != nil {
			f.path, f.stem = p.path, p.stem
		} else {
			f.path, f.stem = filepath.Join(path, name), n.Stem()
		}
		d.files[name] = f
		if d.oldest.IsZero() || f.mtime.Before(d.oldest) {
			d.oldest = f.mtime
		}
	}
	d.oldMax = maxOld
	switch {
	case anyYoung:
		d.floor = minYoung
	case maxOld > 0:
		d.floor = maxOld + 1
		if old != nil && !w.full {
			d.floor = max(d.floor, old.floor)
		}
	}
	w.s.dirs[path] = d
	return w.visitSubdirs(path, d.subdirs)
}

// file is the remembered file of that name, nil for none (or no state).
func (d *dirState) file(name string) *fileRec {
	if d == nil {
		return nil
	}
	return d.files[name]
}

// dirEntry is what a scan needs of a directory entry's lstat. Directories are listed by name alone
// (os.ReadDir's sort and entries cost half of listing a year folder), and only names that may be new or
// changed files are stat'ed, relative to their open directory (dir, in stat_*.go).
type dirEntry struct {
	dir, regular bool
	size         int64
	mtime        time.Time
}

// restatYoung stats again the files of an unchanged directory whose own time was too recent to be
// trusted: one may still be being written in place.
func (w *walker) restatYoung(d *dirState) {
	for name, f := range d.files {
		if f.settled {
			continue
		}
		fi, err := os.Lstat(f.path)
		w.stats.stats++
		if err != nil {
			delete(d.files, name)
			w.changed = true
			continue
		}
		if fi.Size() != f.size || !fi.ModTime().Equal(f.mtime) {
			w.changed = true
		}
		f.size, f.mtime, f.settled = fi.Size(), fi.ModTime(), w.settledAt(fi.ModTime())
	}
}

func (w *walker) visitSubdirs(path string, subdirs []string) error {
	for _, sub := range subdirs {
		p := filepath.Join(path, sub)
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue // removed since: its state is dropped
		}
		if err := w.visit(p, idOf(fi)); err != nil {
			return err
		}
	}
	return nil
}

// markDirty is the watch's way to have a directory listed again at the next scan, whatever its
// modification time says (a file written in place leaves it unchanged); "" asks for a full rescan
// (notifications were lost).
func (s *Spy) markDirty(dir string) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if dir == "" {
		s.dirtyAll = true
		return
	}
	s.dirty[dir] = true
}
