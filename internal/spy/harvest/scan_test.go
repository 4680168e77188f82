package harvest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// wallClock is the real time the spy compares directory modification times with, set by the test.
type wallClock struct {
	mu sync.Mutex
	t  time.Time
}

func (w *wallClock) now() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.t }
func (w *wallClock) set(t time.Time) {
	w.mu.Lock()
	w.t = t
	w.mu.Unlock()
}

// incSpy is a spy on tr whose wall clock the test sets.
func incSpy(t *testing.T, tr *tree) (*Spy, *wallClock) {
	t.Helper()
	s, _ := newSpy(t, tr.root, nil)
	w := &wallClock{t: now}
	s.wall = w.now
	return s, w
}

// pair writes an upload's .db and .txt under 2026/ for run, with payload hash c, modified at mtime.
func (tr *tree) pair(run uint32, uuid string, c byte, mtime time.Time) string {
	tr.t.Helper()
	stem := fmt.Sprintf("Run%d@SiStripApvGain_pcl@%s", run, uuid)
	tr.db(stem+".db", "SiStripApvGain_pcl", uint64(run), hash(c), mtime)
	tr.txt(stem+".txt", "prodMetaData SiStripApvGainRcd_prod.json")
	if err := os.Chtimes(tr.path(stem+".txt"), mtime, mtime); err != nil {
		tr.t.Fatal(err)
	}
	return stem + ".db"
}

// touch sets a directory's modification time, as the file system would have at a change made at mt.
func touch(t *testing.T, dir string, mt time.Time) {
	t.Helper()
	if err := os.Chtimes(dir, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func poll(t *testing.T, s *Spy, cursor string) ([]string, string) {
	t.Helper()
	res, err := s.Poll(context.Background(), cursor)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, o := range res.Observations {
		files = append(files, string(o.Kind)+" "+o.File)
	}
	return files, res.Cursor
}

// TestUnchangedAreaIsNotListed: a poll with nothing new lists no directory and stats no settled file;
// a new file has only its own directory listed.
func TestUnchangedAreaIsNotListed(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	t1 := now.Add(-time.Hour)
	tr.pair(390001, "a", 'a', t1)
	old := filepath.Join(tr.root, "2025")
	os.MkdirAll(old, 0o755)
	touch(t, old, now.Add(-time.Hour))
	year := filepath.Join(tr.root, "2026")
	touch(t, year, now.Add(-time.Hour))
	touch(t, tr.root, now.Add(-time.Hour))
	s, wall := incSpy(t, tr)

	got, cur := poll(t, s, "")
	if len(got) != 1 || !s.last.full || s.last.listed != 3 {
		t.Fatalf("first poll: %v, %+v; want the pair from a full scan of 3 directories", got, s.last)
	}
	wall.set(now.Add(time.Minute))
	got, cur = poll(t, s, cur)
	if len(got) != 0 || s.last.listed != 0 || s.last.reused != 3 || s.last.stats != 0 {
		t.Fatalf("nothing new: %v, %+v; want no listing and no stat", got, s.last)
	}
	db := tr.pair(390002, "b", 'b', now)
	touch(t, year, now.Add(time.Minute))
	wall.set(now.Add(2 * time.Minute))
	got, _ = poll(t, s, cur)
	if len(got) != 1 || got[0] != "harvest-file "+db || s.last.listed != 1 {
		t.Fatalf("one new file: %v, %+v; want it, from one listing", got, s.last)
	}
}

// TestSameTickWrite: a file created in a directory in the same clock tick as the listing, just after
// it, leaves the directory's modification time as it was; the spy must list it again anyway.
func TestSameTickWrite(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	tr.pair(390001, "a", 'a', now.Add(-time.Hour))
	year := filepath.Join(tr.root, "2026")
	tick := now.Add(-500 * time.Millisecond) // the directory changed half a second before the poll
	touch(t, year, tick)
	touch(t, tr.root, now.Add(-time.Hour))
	s, wall := incSpy(t, tr)
	got, cur := poll(t, s, "")
	if len(got) != 1 {
		t.Fatalf("first poll: %v", got)
	}
	late := tr.pair(390001, "c", 'c', now)
	touch(t, year, tick) // a coarse file system: the same second, the same time
	wall.set(now.Add(10 * time.Second))
	got, cur = poll(t, s, cur)
	if len(got) != 1 || got[0] != "harvest-file "+late {
		t.Fatalf("after a same-tick write: %v, %+v; want the late file", got, s.last)
	}
	// Listed again at a time well after its modification: that listing is trusted.
	wall.set(now.Add(20 * time.Second))
	if got, _ = poll(t, s, cur); len(got) != 0 || s.last.listed != 0 {
		t.Errorf("settled directory: %v, %+v", got, s.last)
	}
}

// TestReplacedFile: a file replaced by a newer one of the same name (renamed into place) is read again.
func TestReplacedFile(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	db := tr.pair(390001, "a", 'a', now.Add(-2*time.Hour))
	year := filepath.Join(tr.root, "2026")
	touch(t, year, now.Add(-2*time.Hour))
	touch(t, tr.root, now.Add(-2*time.Hour))
	s, wall := incSpy(t, tr)
	_, cur := poll(t, s, "")

	tr.db("new.tmp", "SiStripApvGain_pcl", 390001, hash('z'), now.Add(-time.Hour))
	if err := os.Rename(tr.path("new.tmp"), tr.path(db)); err != nil {
		t.Fatal(err)
	}
	touch(t, year, now.Add(-time.Hour))
	wall.set(now.Add(time.Minute))
	res, err := s.Poll(context.Background(), cur)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Observations) != 1 || res.Observations[0].Payloads[0].Payload != hash('z') {
		t.Fatalf("replaced file: %+v", res.Observations)
	}
}

// TestRemovedDirectory: a directory that goes away takes its files and their problems with it.
func TestRemovedDirectory(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	tr.pair(390001, "a", 'a', now.Add(-time.Hour))
	gone := filepath.Join(tr.root, "2025")
	os.MkdirAll(gone, 0o755)
	os.WriteFile(filepath.Join(gone, "Run380001@SiStripApvGain_pcl@x.db"), []byte("not SQLite"), 0o644)
	os.WriteFile(filepath.Join(gone, "Run380001@SiStripApvGain_pcl@x.txt"), []byte("garbage\n"), 0o644)
	for _, d := range []string{gone, filepath.Join(tr.root, "2026"), tr.root} {
		touch(t, d, now.Add(-time.Hour))
	}
	s, wall := incSpy(t, tr)
	_, cur := poll(t, s, "")
	if len(s.Problems()) != 1 {
		t.Fatalf("problems %+v, want the broken pair", s.Problems())
	}
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	touch(t, tr.root, now.Add(-time.Minute))
	wall.set(now.Add(time.Minute))
	poll(t, s, cur)
	if len(s.Problems()) != 0 || s.dirs[gone] != nil {
		t.Errorf("after removing %s: problems %+v, remembered %v", gone, s.Problems(), s.dirs[gone] != nil)
	}
	if _, ok := s.entries["Run390001@SiStripApvGain_pcl@a.db"]; !ok {
		t.Error("the other year's file was forgotten too")
	}
}

// TestLookbackBoundsMemory: files older than the lookback are neither read nor remembered, and when
// their directory is listed again their names are skipped without a stat.
func TestLookbackBoundsMemory(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	monthAgo := now.Add(-30 * 24 * time.Hour)
	for i := range 20 {
		tr.pair(380000+uint32(i), "old", 'o', monthAgo)
	}
	young := tr.pair(390001, "y", 'y', now.Add(-time.Hour))
	year := filepath.Join(tr.root, "2026")
	touch(t, year, now.Add(-time.Hour))
	touch(t, tr.root, now.Add(-time.Hour))
	s, wall := incSpy(t, tr)
	got, cur := poll(t, s, "")
	if len(got) != 1 || got[0] != "harvest-file "+young || len(s.entries) != 1 || len(s.dirs[year].files) != 2 {
		t.Fatalf("observed %v, remembered %d entries and %d files; want only the young pair", got, len(s.entries), len(s.dirs[year].files))
	}
	newer := tr.pair(390002, "n", 'n', now)
	touch(t, year, now)
	wall.set(now.Add(time.Minute))
	got, _ = poll(t, s, cur)
	if len(got) != 1 || got[0] != "harvest-file "+newer {
		t.Fatalf("new file: %v", got)
	}
	if s.last.stats != 4 { // the young pair and the new one; none of the 40 old files
		t.Errorf("%d stats on listing again, want 4 (old files skipped by the floor)", s.last.stats)
	}
}

// TestFullRescanSafetyNet: a file rewritten in place in a settled directory moves no directory time; the
// periodic full rescan finds it.
func TestFullRescanSafetyNet(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	db := tr.pair(390001, "a", 'a', now.Add(-2*time.Hour))
	year := filepath.Join(tr.root, "2026")
	touch(t, year, now.Add(-2*time.Hour))
	touch(t, tr.root, now.Add(-2*time.Hour))
	s, wall := incSpy(t, tr)
	_, cur := poll(t, s, "")

	os.Remove(tr.path(db))
	tr.db(db, "SiStripApvGain_pcl", 390001, hash('z'), now.Add(-time.Hour))
	touch(t, year, now.Add(-2*time.Hour)) // as if written in place
	wall.set(now.Add(time.Minute))
	got, cur := poll(t, s, cur)
	if len(got) != 0 || s.last.listed != 0 {
		t.Fatalf("before the rescan: %v, %+v (the test wants the rewrite invisible to directory times)", got, s.last)
	}
	wall.set(now.Add(DefaultFullRescan))
	res, err := s.Poll(context.Background(), cur)
	if err != nil {
		t.Fatal(err)
	}
	if !s.last.full || len(res.Observations) != 1 || res.Observations[0].Payloads[0].Payload != hash('z') {
		t.Fatalf("full rescan: %+v, %+v", res.Observations, s.last)
	}
}

// TestWatchMarksDirectoryDirty: a notification of a write has the next scan list the file's directory
// again although its modification time did not move.
func TestWatchMarksDirectoryDirty(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	db := tr.pair(390001, "a", 'a', now.Add(-2*time.Hour))
	year := filepath.Join(tr.root, "2026")
	touch(t, year, now.Add(-2*time.Hour))
	touch(t, tr.root, now.Add(-2*time.Hour))
	s, wall := incSpy(t, tr)
	_, cur := poll(t, s, "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan struct{}, 1)
	go s.Watch(ctx, func() {
		select {
		case events <- struct{}{}:
		default:
		}
	})
	txt := tr.path(strings.TrimSuffix(db, ".db") + ".txt")
	deadline := time.Now().Add(10 * time.Second)
	for noticed := false; !noticed; {
		// Rewritten in place (same name, directory time restored), until the watch has started.
		f, err := os.OpenFile(txt, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n")
		f.Close()
		touch(t, year, now.Add(-2*time.Hour))
		select {
		case <-events:
			noticed = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no notification of a write")
			}
		}
	}
	wall.set(now.Add(time.Minute))
	got, _ := poll(t, s, cur)
	if len(got) != 1 || s.last.listed != 1 {
		t.Errorf("after a notified write: %v, %+v; want the pair read again from one listing", got, s.last)
	}
}

// TestInterruptedScanKeepsItsWork: a poll cut short keeps what notifications asked for, so the next
// poll still lists the directory a write was notified in.
func TestInterruptedScanKeepsItsWork(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	db := tr.pair(390001, "a", 'a', now.Add(-2*time.Hour))
	year := filepath.Join(tr.root, "2026")
	touch(t, year, now.Add(-2*time.Hour))
	touch(t, tr.root, now.Add(-2*time.Hour))
	s, wall := incSpy(t, tr)
	_, cur := poll(t, s, "")

	// Rewritten in place, as a notification reported.
	txt := tr.path(strings.TrimSuffix(db, ".db") + ".txt")
	if err := os.WriteFile(txt, append(must(os.ReadFile(txt)), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	touch(t, year, now.Add(-2*time.Hour))
	s.markDirty(year)
	wall.set(now.Add(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Poll(ctx, cur); err == nil {
		t.Fatal("a poll with its context cancelled succeeded")
	}
	got, _ := poll(t, s, cur)
	if len(got) != 1 || s.last.listed != 1 {
		t.Errorf("after an interrupted poll: %v, %+v; want the notified directory listed", got, s.last)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestUnchangedScanSendsWhatTheCursorLacks: a poll whose walk found nothing changed sends nothing and
// keeps the cursor when the runner acknowledged the previous poll; given an older cursor (the runner
// could not store what the previous poll sent) it sends that again, changed area or not.
func TestUnchangedScanSendsWhatTheCursorLacks(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	tr.pair(390001, "a", 'a', now.Add(-time.Hour))
	year := filepath.Join(tr.root, "2026")
	touch(t, year, now.Add(-time.Hour))
	touch(t, tr.root, now.Add(-time.Hour))
	s, wall := incSpy(t, tr)
	got, first := poll(t, s, "")
	if len(got) != 1 {
		t.Fatalf("first poll: %v", got)
	}
	db := tr.pair(390002, "b", 'b', now)
	touch(t, year, now.Add(time.Minute))
	wall.set(now.Add(2 * time.Minute))
	got, second := poll(t, s, first)
	if len(got) != 1 || got[0] != "harvest-file "+db {
		t.Fatalf("one new file: %v", got)
	}
	wall.set(now.Add(3 * time.Minute))
	got, third := poll(t, s, second)
	if len(got) != 0 || third != second || s.last.listed != 0 {
		t.Fatalf("nothing new, acknowledged: %v, cursor %q (was %q), %+v; want nothing, the same cursor", got, third, second, s.last)
	}
	// The second poll's observations were never stored: the runner gives the first cursor again.
	wall.set(now.Add(4 * time.Minute))
	if got, _ = poll(t, s, first); len(got) != 1 || got[0] != "harvest-file "+db {
		t.Fatalf("given the older cursor with nothing changed: %v; want the new file again", got)
	}
}
