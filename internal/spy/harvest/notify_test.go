package harvest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
)

// trustedYear is a trusted spy on a fresh area holding one harvest file in its 2026 folder, and that
// folder's path; scanned once unless the caller wants to change the spy first (scan false).
func trustedYear(t *testing.T, scan bool) (*Spy, string) {
	t.Helper()
	root := t.TempDir()
	year := filepath.Join(root, "2026")
	write(t, filepath.Join(year, "Run390001@SiStripApvGain_pcl@u.txt"), "x", now.Add(-time.Hour))
	s := trustedSpy(t, root)
	if scan {
		grouping(t, s)
	}
	return s, year
}

// trustedSpy is a spy with notifications on, over a temp dir that must be on a trusted file system
// (the test is skipped otherwise: there the spy would rightly not trust them).
func trustedSpy(t *testing.T, root string) *Spy {
	t.Helper()
	if !notificationsSupported {
		t.Skip("change notifications need Linux")
	}
	ft, err := fsTypeOf(root)
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := trustedFSType(ft); !ok {
		t.Skipf("the temp dir is on %s, whose notifications the spy does not trust", name)
	}
	s, err := New(Config{Dir: root, Clock: clock.NewFake(now), Notifications: NotificationsAuto})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// grouping is a scan's result as text: each upload's stem and its files' sizes.
func grouping(t *testing.T, s *Spy) string {
	t.Helper()
	got, _, err := s.scan(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range got {
		fmt.Fprintf(&b, "%s", f.stem)
		for _, r := range []*fileRec{f.db, f.txt, f.marker} {
			if r == nil {
				b.WriteString(" -")
			} else {
				fmt.Fprintf(&b, " %s:%d:%d", r.path, r.size, r.mtime.UnixNano())
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func write(t *testing.T, p, content string, mt time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// TestTrustedNotifications: with notifications trusted, a new file, a file written in place (the
// directory's time restored), a removed file, a rename and a new subdirectory with files in it are all
// seen at the very next scan, without the year folder being listed again and with only the named
// files stat'ed.
func TestTrustedNotifications(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	year := filepath.Join(root, "2026")
	old := now.Add(-time.Hour)
	for i := range 50 {
		write(t, filepath.Join(year, fmt.Sprintf("Run3900%02d@SiStripApvGain_pcl@u.txt", i)), "x", old)
	}
	touch(t, year, old)
	s := trustedSpy(t, root)
	if g := grouping(t, s); strings.Count(g, "\n") != 50 || !s.last.full || s.last.listed != 2 {
		t.Fatalf("first scan: %d uploads, %+v", strings.Count(g, "\n"), s.last)
	}
	if !s.dirs[year].watched {
		t.Fatal("the year folder is not watched after its first listing")
	}
	stat := func(what string, wantStats int, check func(g string) bool) {
		t.Helper()
		g := grouping(t, s)
		if s.last.listed != 0 || s.last.stats != wantStats || !check(g) {
			t.Fatalf("%s: %+v (want no listing and %d stats), grouping:\n%s", what, s.last, wantStats, g)
		}
	}
	stat("nothing new", 0, func(string) bool { return true })

	write(t, filepath.Join(year, "Run390100@SiStripApvGain_pcl@new.db"), "db", old)
	stat("new file", 1, func(g string) bool { return strings.Contains(g, "Run390100@SiStripApvGain_pcl@new ") })

	// Written in place, size and time changed, the directory's time put back.
	p := filepath.Join(year, "Run390007@SiStripApvGain_pcl@u.txt")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("rewritten")
	f.Close()
	touch(t, year, old)
	stat("written in place", 1, func(g string) bool { return strings.Contains(g, p+":9:") })

	if err := os.Remove(filepath.Join(year, "Run390003@SiStripApvGain_pcl@u.txt")); err != nil {
		t.Fatal(err)
	}
	stat("removed", 1, func(g string) bool { return !strings.Contains(g, "Run390003@") })

	if err := os.Rename(filepath.Join(year, "Run390004@SiStripApvGain_pcl@u.txt"), filepath.Join(year, "Run390104@SiStripApvGain_pcl@u.txt")); err != nil {
		t.Fatal(err)
	}
	stat("renamed", 2, func(g string) bool { return !strings.Contains(g, "Run390004@") && strings.Contains(g, "Run390104@") })

	sub := filepath.Join(year, "late")
	write(t, filepath.Join(sub, "Run390200@SiStripApvGain_pcl@s.db"), "db", old)
	write(t, filepath.Join(sub, "Run390200@SiStripApvGain_pcl@s.txt"), "txt", old)
	g := grouping(t, s)
	if s.last.listed != 1 || s.last.stats != 1+2 || !strings.Contains(g, filepath.Join(sub, "Run390200@SiStripApvGain_pcl@s.db")) {
		t.Fatalf("new subdirectory: %+v (want it alone listed: 1 stat in the year folder, 2 in it), grouping:\n%s", s.last, g)
	}
	if !s.dirs[sub].watched {
		t.Fatal("the new subdirectory is not watched")
	}
	write(t, filepath.Join(sub, "Run390200@SiStripApvGain_pcl@s.txt.uploaded"), "m", old)
	stat("file in the new subdirectory", 1, func(g string) bool { return strings.Contains(g, "s.txt.uploaded") })

	// Whatever the incremental scans made of it, a full rescan agrees.
	before := grouping(t, s)
	s.lastFull = time.Time{}
	if after := grouping(t, s); after != before || !s.last.full {
		t.Fatalf("full rescan disagrees:\n%s\nincremental:\n%s", after, before)
	}
}

// TestTrustedIgnoresDirtyMarks: a notification of the fsnotify watch (markDirty) does not have a
// watched directory listed again; its overflow (a full rescan) still does.
func TestTrustedIgnoresDirtyMarks(t *testing.T) {
	t.Parallel()
	s, year := trustedYear(t, true)
	s.markDirty(year)
	if grouping(t, s); s.last.listed != 0 {
		t.Fatalf("dirty mark of a watched directory: %+v, want no listing", s.last)
	}
	s.markDirty("")
	if grouping(t, s); s.last.listed != 2 || !s.last.full {
		t.Fatalf("lost notifications: %+v, want a full rescan", s.last)
	}
}

// TestTrustedWatchRefused: a directory the kernel will not watch falls back to the modification time
// rules: listed again when its time moves, not listed while it does not.
func TestTrustedWatchRefused(t *testing.T) {
	t.Parallel()
	s, year := trustedYear(t, false)
	root := filepath.Dir(year)
	s.wall = func() time.Time { return now }
	touch(t, year, now.Add(-time.Hour))
	// The year folder's watch is refused: its f_type check fails as an exhausted watch table would.
	real := s.statfs
	s.statfs = func(p string) (int64, error) {
		if p == year {
			return 0, syscall.ENOSPC
		}
		return real(p)
	}
	grouping(t, s)
	if s.dirs[year].watched || !s.dirs[root].watched {
		t.Fatalf("watched: year %v, root %v; want only the root", s.dirs[year].watched, s.dirs[root].watched)
	}
	if grouping(t, s); s.last.listed != 0 {
		t.Fatalf("unchanged: %+v", s.last)
	}
	write(t, filepath.Join(year, "Run390002@SiStripApvGain_pcl@u.txt"), "x", now.Add(-time.Hour))
	touch(t, year, now.Add(-time.Minute))
	if g := grouping(t, s); s.last.listed != 1 || !strings.Contains(g, "Run390002@") {
		t.Fatalf("time moved: %+v, grouping:\n%s", s.last, g)
	}
}

// TestNotificationsUntrusted: on a file system the spy does not trust (FUSE, as EOS), or with
// notifications off, the scan is today's: no tracker, directories listed again when their time moves.
func TestNotificationsUntrusted(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]struct {
		n  Notifications
		ft int64
	}{"fuse": {NotificationsAuto, 0x65735546}, "nfs": {NotificationsAuto, 0x6969}, "off": {NotificationsOff, 0x01021994}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			year := filepath.Join(root, "2026")
			write(t, filepath.Join(year, "Run390001@SiStripApvGain_pcl@u.txt"), "x", now.Add(-time.Hour))
			touch(t, year, now.Add(-time.Hour))
			touch(t, root, now.Add(-time.Hour))
			s, err := New(Config{Dir: root, Clock: clock.NewFake(now), Notifications: cfg.n})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.statfs = func(string) (int64, error) { return cfg.ft, nil }
			s.wall = func() time.Time { return now }
			grouping(t, s)
			if s.trk != nil || s.dirs[year].watched {
				t.Fatal("notifications trusted")
			}
			write(t, filepath.Join(year, "Run390002@SiStripApvGain_pcl@u.txt"), "x", now.Add(-time.Hour))
			touch(t, year, now.Add(-time.Minute))
			if grouping(t, s); s.last.listed != 1 {
				t.Fatalf("time moved: %+v, want the folder listed", s.last)
			}
		})
	}
}

// TestTrustedFSType: the f_type decision.
func TestTrustedFSType(t *testing.T) {
	t.Parallel()
	for ft, want := range map[int64]bool{
		0xEF53: true, 0x58465342: true, 0x9123683E: true, 0x01021994: true, 0x794C7630: true,
		0x65735546: false, 0x6969: false, 0x5346414F: false, 0xFF534D42: false, 0x00C36400: false,
		0: false, 0x12345678: false,
	} {
		if name, got := trustedFSType(ft); got != want || name == "" {
			t.Errorf("f_type %#x: %q trusted %v, want %v", ft, name, got, want)
		}
	}
}

// TestTrustedMatchesFullListing: on a random sequence of creates, in-place writes, removals, renames,
// new and removed subdirectories, the trusted spy's grouping after each step is what a full listing
// (today's scan, notifications off) makes of the area, and its own full rescan at the end agrees.
func TestTrustedMatchesFullListing(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			year := filepath.Join(root, "2026")
			if err := os.MkdirAll(year, 0o755); err != nil {
				t.Fatal(err)
			}
			trusted := trustedSpy(t, root)
			off, err := New(Config{Dir: root, Clock: clock.NewFake(now), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(seed, 42))
			run := uint32(390000)
			dirs := []string{year}
			exts := []string{".db", ".txt", ".txt.uploaded"}
			files := func() []string {
				var out []string
				for _, d := range dirs {
					names, _ := os.ReadDir(d)
					for _, n := range names {
						if !n.IsDir() {
							out = append(out, filepath.Join(d, n.Name()))
						}
					}
				}
				slices.Sort(out)
				return out
			}
			for step := range 80 {
				fs := files()
				mt := now.Add(-time.Duration(r.IntN(3600)) * time.Second)
				switch op := r.IntN(10); {
				case op < 4 || len(fs) == 0:
					run++
					d := dirs[r.IntN(len(dirs))]
					name := fmt.Sprintf("Run%d@SiStripApvGain_pcl@u%d%s", run, step, exts[r.IntN(3)])
					if r.IntN(8) == 0 {
						name = fmt.Sprintf("notes%d.log", step)
					}
					write(t, filepath.Join(d, name), "x", mt)
				case op < 6:
					p := fs[r.IntN(len(fs))]
					dm := must(os.Stat(filepath.Dir(p))).ModTime()
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
					if err != nil {
						t.Fatal(err)
					}
					f.WriteString(strings.Repeat("y", 1+r.IntN(5)))
					f.Close()
					touch(t, filepath.Dir(p), dm)
				case op < 7:
					os.Remove(fs[r.IntN(len(fs))])
				case op < 8:
					p := fs[r.IntN(len(fs))]
					run++
					np := filepath.Join(dirs[r.IntN(len(dirs))], fmt.Sprintf("Run%d@SiStripApvGain_pcl@r%d.txt", run, step))
					if err := os.Rename(p, np); err != nil {
						t.Fatal(err)
					}
				case op < 9:
					d := filepath.Join(dirs[r.IntN(len(dirs))], fmt.Sprintf("d%d", step))
					run++
					write(t, filepath.Join(d, fmt.Sprintf("Run%d@SiStripApvGain_pcl@s.db", run)), "db", mt)
					dirs = append(dirs, d)
				default:
					if len(dirs) > 1 {
						i := 1 + r.IntN(len(dirs)-1)
						gone := dirs[i]
						os.RemoveAll(gone)
						dirs = slices.DeleteFunc(dirs, func(d string) bool { return d == gone || strings.HasPrefix(d, gone+"/") })
					}
				}
				off.lastFull = time.Time{} // the truth: everything listed and stat'ed
				want := grouping(t, off)
				if got := grouping(t, trusted); got != want {
					t.Fatalf("step %d: trusted scan (%+v)\n%s\nfull listing\n%s", step, trusted.last, got, want)
				}
			}
			before := grouping(t, trusted)
			trusted.lastFull = time.Time{}
			if after := grouping(t, trusted); after != before {
				t.Fatalf("the trusted spy's full rescan disagrees:\n%s\nincremental:\n%s", after, before)
			}
		})
	}
}
