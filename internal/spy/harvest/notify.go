package harvest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The scan with change notifications (Linux). Where the kernel sees every change of the harvest area
// (a local file system: the writer is on this machine or the changes go through this kernel), the spy
// keeps an inotify tracker whose queue each scan drains before it walks. A directory is watched before
// it is listed, so its remembered listing plus the drained events is its content: such a directory is
// not listed again when its modification time moves, and its young files are not stat'ed again; only
// the names the events named are, with the rules a listing applies. On a network or FUSE file system
// (EOS, AFS, NFS) a change made on another client produces no event here, so there the modification
// time rules of scan.go stay. A full queue (the kernel dropped events), a directory that went away or
// moved, or a root that changed (a file system mounted over it) has everything, or that directory and
// its parent, listed again; a watch the kernel refuses (fs.inotify.max_user_watches) leaves that
// directory to the modification time rules. The full rescan stays the safety net for what even a local
// kernel does not report to a directory watch (a file written through a hard link elsewhere, or
// through a shared memory map).

// changes are what one drain of the tracker asks the scan to do.
type changes struct {
	all    bool                       // events were lost: list everything again
	names  map[string]map[string]bool // directory -> entry names to stat again
	relist map[string]bool            // directories to list again
}

func newChanges() *changes {
	return &changes{names: map[string]map[string]bool{}, relist: map[string]bool{}}
}

func (c *changes) name(dir, name string) {
	m := c.names[dir]
	if m == nil {
		m = map[string]bool{}
		c.names[dir] = m
	}
	m[name] = true
}

func (c *changes) relistDir(dir string) { c.relist[dir] = true }

// merge adds what o asks for (a scan that did not finish hands its work to the next).
func (c *changes) merge(o *changes) {
	c.all = c.all || o.all
	for d, names := range o.names {
		for n := range names {
			c.name(d, n)
		}
	}
	for d := range o.relist {
		c.relist[d] = true
	}
}

// Notifications says whether the harvest spy trusts the kernel's change notifications.
type Notifications string

// The values of Config.Notifications.
const (
	// NotificationsOff keeps the modification time rules everywhere (as does the zero value).
	NotificationsOff Notifications = "off"
	// NotificationsAuto trusts notifications where the harvest area's file system is local (statfs).
	NotificationsAuto Notifications = "auto"
)

// fsTypes are the statfs(2) f_types the spy knows, and whether the kernel sees every change on them.
var fsTypes = map[int64]struct {
	name    string
	trusted bool
}{
	0xEF53:     {"ext2/3/4", true},
	0x58465342: {"xfs", true},
	0x9123683E: {"btrfs", true},
	0x01021994: {"tmpfs", true},
	0x794C7630: {"overlayfs", true},
	0x65735546: {"fuse", false}, // EOS's mount
	0x6969:     {"nfs", false},
	0x5346414F: {"afs", false},
	0xFF534D42: {"cifs", false},
	0x00C36400: {"ceph", false},
}

// trustedFSType names a file system type and says whether its changes are all seen by this kernel;
// an unknown type is not trusted.
func trustedFSType(t int64) (string, bool) {
	if k, ok := fsTypes[t]; ok {
		return k.name, k.trusted
	}
	return fmt.Sprintf("unknown (f_type %#x)", t), false
}

// dirID is what the scan reads of a directory before it lists it.
type dirID struct {
	mtime    time.Time
	dev, ino uint64
}

func idOf(fi os.FileInfo) dirID {
	dev, ino := devIno(fi)
	return dirID{mtime: fi.ModTime(), dev: dev, ino: ino}
}

// notes drains the tracker at the start of a scan, deciding first (again, when the root is no longer
// the directory it was: a file system mounted over it) whether notifications are trusted. It returns
// nil when they are not: the walk applies the modification time rules everywhere.
func (s *Spy) notes(root string, id dirID) *changes {
	if s.cfg.Notifications != NotificationsAuto || !notificationsSupported {
		return nil
	}
	carried := s.carry
	s.carry = nil
	if s.notesRoot == nil || s.notesRoot.dev != id.dev || s.notesRoot.ino != id.ino {
		s.stopNotes()
		s.notesRoot = &id
		ft, err := s.statfs(root)
		if err != nil {
			s.log.Warn("harvest area: cannot tell its file system; directory times decide", "path", root, "err", err)
			return nil
		}
		name, ok := trustedFSType(ft)
		if !ok {
			s.log.Info("harvest area on a file system whose changes this machine may not see; directory times decide", "path", root, "fs", name)
			return nil
		}
		trk, err := openTracker()
		if err != nil {
			s.log.Warn("harvest area: no change notifications; directory times decide", "err", err)
			return nil
		}
		s.trk = trk
		s.log.Info("harvest area on a local file system: change notifications trusted", "path", root, "fs", name)
		ch := newChanges()
		ch.all = len(s.dirs) > 0 // what is remembered was listed without a watch
		return ch
	}
	if s.trk == nil {
		return nil
	}
	ch := newChanges()
	if carried != nil {
		ch.merge(carried)
	}
	if err := s.trk.drain(ch); err != nil {
		s.log.Warn("harvest area: change notifications failed; listing everything again", "err", err)
		ch.all = true
	}
	if ch.all {
		// The tracker starts over: the full listing that follows watches every directory again.
		s.log.Info("harvest area: change notifications were lost; listing everything again")
		s.stopNotes()
		trk, err := openTracker()
		if err != nil {
			s.log.Warn("harvest area: no change notifications; directory times decide", "err", err)
			return nil
		}
		s.trk = trk
	}
	return ch
}

// stopNotes closes the tracker; every directory is left to the modification time rules until it is
// listed under a new one.
func (s *Spy) stopNotes() {
	if s.trk != nil {
		if err := s.trk.close(); err != nil {
			s.log.Debug("harvest area: closing the change notifications", "err", err)
		}
		s.trk = nil
	}
	for _, d := range s.dirs {
		d.watched = false
	}
}

// Close releases the spy's change notifications. A scan after Close works with directory times alone
// until the root changes.
func (s *Spy) Close() error {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	var err error
	if s.trk != nil {
		err = s.trk.close()
		s.trk = nil
	}
	for _, d := range s.dirs {
		d.watched = false
	}
	return err
}

// watchDir adds a watch on a directory about to be listed, and says whether it holds: the directory is
// on a trusted file system (a mount of another below the root may not be) and the kernel accepted it.
func (w *walker) watchDir(path string) bool {
	s := w.s
	if w.ch == nil || s.trk == nil {
		return false
	}
	if path != s.cfg.Dir {
		ft, err := s.statfs(path)
		if err != nil {
			return false
		}
		if _, ok := trustedFSType(ft); !ok {
			s.trk.unwatch(path)
			return false
		}
	}
	if err := s.trk.watch(path); err != nil {
		s.trk.unwatch(path)
		if !s.watchFailLogged {
			s.watchFailLogged = true
			msg := "harvest area: a directory cannot be watched; directory times decide for it"
			if errors.Is(err, syscall.ENOSPC) {
				msg += " (raise fs.inotify.max_user_watches)"
			}
			s.log.Warn(msg, "path", path, "err", err)
		}
		return false
	}
	return true
}

// applyNotes brings a watched directory's state up to date from the names the events named, with the
// rules a listing applies, and ages out the files that passed the lookback.
func (w *walker) applyNotes(path string, d *dirState) {
	names := w.ch.names[path]
	var (
		removed bool
		maxOld  uint32
	)
	if len(names) > 0 {
		dh, err := openDir(path)
		if err != nil {
			// Gone or unreadable since the drain: the next drain says so and the directory is
			// listed again; until then stat by path.
			dh = nil
		}
		lstat := func(name string) (dirEntry, error) {
			if dh != nil {
				return dh.lstat(name)
			}
			fi, err := os.Lstat(filepath.Join(path, name))
			if err != nil {
				return dirEntry{}, err
			}
			return dirEntry{dir: fi.IsDir(), regular: fi.Mode().IsRegular(), size: fi.Size(), mtime: fi.ModTime()}, nil
		}
		for name := range names {
			n, perr := pcl.ParseHarvestName(name)
			if perr == nil && d.files[name] == nil && n.Run < d.floor {
				continue // an old file, as a listing skips it
			}
			fi, err := lstat(name)
			w.stats.stats++
			isDir := err == nil && fi.dir
			d.setSubdir(name, isDir)
			if perr != nil {
				if err == nil && fi.regular {
					if !d.ignored[name] {
						w.s.log.Debug("harvest area: ignoring a file that is not a harvest file", "path", filepath.Join(path, name), "reason", perr)
					}
					d.ignored[name] = true
				} else {
					delete(d.ignored, name)
				}
				continue
			}
			old := d.files[name]
			switch {
			case err != nil || !fi.regular:
				if old != nil {
					delete(d.files, name)
					removed, w.changed = true, true
				}
				continue
			case fi.mtime.Before(w.cutoff):
				maxOld = max(maxOld, n.Run)
				if old != nil {
					delete(d.files, name)
					removed, w.changed = true, true
				}
				continue
			case old != nil && old.size == fi.size && old.mtime.Equal(fi.mtime):
				continue
			}
			f := &fileRec{base: name, name: n, size: fi.size, mtime: fi.mtime, settled: w.settledAt(fi.mtime)}
			if old != nil {
				f.path, f.stem = old.path, old.stem
			} else {
				f.path, f.stem = filepath.Join(path, name), n.Stem()
			}
			if len(d.files) == 0 {
				removed = true // the floor becomes this run, as a listing would make it
			}
			d.files[name] = f
			if d.oldest.IsZero() || f.mtime.Before(d.oldest) {
				d.oldest = f.mtime
			}
			w.changed = true
		}
		if dh != nil {
			dh.close()
		}
	}
	if !d.oldest.IsZero() && d.oldest.Before(w.cutoff) {
		d.oldest = time.Time{}
		for name, f := range d.files {
			if f.mtime.Before(w.cutoff) {
				maxOld = max(maxOld, f.name.Run)
				delete(d.files, name)
				removed, w.changed = true, true
			} else if d.oldest.IsZero() || f.mtime.Before(d.oldest) {
				d.oldest = f.mtime
			}
		}
	}
	d.oldMax = max(d.oldMax, maxOld)
	if removed {
		d.refloor()
	}
}

// refloor sets the floor as a listing of the directory as it is now would: the lowest run of its young
// files, or above its old files when it has none.
func (d *dirState) refloor() {
	if len(d.files) > 0 {
		first := true
		for _, f := range d.files {
			if first || f.name.Run < d.floor {
				d.floor, first = f.name.Run, false
			}
		}
		return
	}
	if d.oldMax > 0 {
		d.floor = max(d.oldMax+1, d.floor)
	} else {
		d.floor = 0
	}
}

// setSubdir records whether an entry is a subdirectory.
func (d *dirState) setSubdir(name string, isDir bool) {
	i := slices.Index(d.subdirs, name)
	switch {
	case isDir && i < 0:
		d.subdirs = append(d.subdirs, name)
	case !isDir && i >= 0:
		d.subdirs = slices.Delete(d.subdirs, i, i+1)
	}
}
