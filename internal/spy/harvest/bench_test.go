package harvest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// yearArea writes a year's harvest area in the real naming: uploads pairs and markers of 2,000 runs
// of 20 workflows (120,000 files) in <root>/2026/, modified over the year, the newest run now. Only
// the names and times matter: files older than the lookback are never opened, and the young ones are
// tried once (they are not SQLite) and then left alone while they do not change.
func yearArea(b *testing.B, end time.Time) string { return yearsArea(b, end, 1) }

// yearsArea is yearArea for several years, each in its own folder as CMS keeps them (<root>/2017/ ..
// <root>/2026/ for ten), each of 120,000 files modified over its year.
func yearsArea(b *testing.B, end time.Time, years int) string {
	b.Helper()
	root := b.TempDir()
	var tags []string
	for _, w := range pcl.DefaultCatalogue().Workflows() {
		for _, in := range w.Inputs {
			tags = append(tags, in.Tag)
		}
	}
	const runs, workflows = 2000, 20
	year := 365 * 24 * time.Hour
	step := year / runs
	for y := range years {
		back := years - 1 - y // years before the newest
		dir := filepath.Join(root, fmt.Sprint(2026-back))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for r := range runs {
			run := 380000 - 14000*back + 7*r
			mt := end.Add(-time.Duration(back)*year - time.Duration(runs-1-r)*step)
			for w := range workflows {
				stem := fmt.Sprintf("Run%d@%s@%08x-4c1e-11ef-9a2b-0242ac1200%02d", run, tags[w%len(tags)], run*workflows+w, w)
				for _, ext := range []string{".db", ".txt", ".txt.uploaded"} {
					p := filepath.Join(dir, stem+ext)
					if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
						b.Fatal(err)
					}
					if err := os.Chtimes(p, mt, mt); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	return root
}

// settledSpy is a spy on root that has scanned it once and then again after the directories' times
// settled, and its cursor: what every benchmark poll starts from.
func settledSpy(b *testing.B, root string, end time.Time, mode Notifications) (*Spy, string) {
	b.Helper()
	s, err := New(Config{Dir: root, Clock: clock.NewFake(end.Add(time.Hour)), Notifications: mode})
	if err != nil {
		b.Fatal(err)
	}
	res, err := s.Poll(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(DefaultMtimeSlack + 100*time.Millisecond) // let the directories' times settle
	if _, err := s.Poll(context.Background(), res.Cursor); err != nil {
		b.Fatal(err)
	}
	return s, res.Cursor
}

// newFiles numbers the files the one-new-file benchmarks write, across benchmarks and -count's
// repeats: each must be new.
var newFiles int

// benchPolls runs the sub-benchmarks prefix+"nothing-new" and prefix+"one-new-file" (a marker
// written into root's 2026 folder before each poll) on s from cursor.
func benchPolls(b *testing.B, s *Spy, root, cursor, prefix string) {
	ctx := context.Background()
	b.Run(prefix+"nothing-new", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Poll(ctx, cursor); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(prefix+"one-new-file", func(b *testing.B) {
		dir := filepath.Join(root, "2026")
		for b.Loop() {
			newFiles++
			p := filepath.Join(dir, fmt.Sprintf("Run393993@SiStripApvGain_pcl@bench%d.txt.uploaded", newFiles))
			if err := os.WriteFile(p, []byte("prodMetaData {}"), 0o644); err != nil {
				b.Fatal(err)
			}
			res, err := s.Poll(ctx, cursor)
			if err != nil || len(res.Observations) == 0 {
				b.Fatalf("%d observations, %v", len(res.Observations), err)
			}
			cursor = res.Cursor
		}
		b.ReportMetric(float64(s.last.listed), "listed/op")
	})
}

// BenchmarkPollDecadeArea: the polls of BenchmarkPollYearArea on a year's area and on ten years'
// (1.2 million files in ten year folders), notifications off and, where the temp dir's file system
// lets them be trusted, auto. A decade must cost what a year does: the older years' folders do not
// change, so they are neither listed nor their files stat'ed again. Slow to set up (the files are
// written once per size).
func BenchmarkPollDecadeArea(b *testing.B) {
	end := time.Now().Add(-time.Hour)
	for _, years := range []int{1, 10} {
		root := yearsArea(b, end, years)
		modes := []Notifications{NotificationsOff}
		if ft, err := fsTypeOf(root); err == nil {
			if _, ok := trustedFSType(ft); ok {
				modes = append(modes, NotificationsAuto)
			}
		}
		for _, mode := range modes {
			s, cursor := settledSpy(b, root, end, mode)
			benchPolls(b, s, root, cursor, fmt.Sprintf("years=%d/%s/", years, mode))
			s.Close()
		}
	}
}

// BenchmarkPollYearArea: one poll of a year's area (120,000 files) with nothing new, with one new
// file, and a full rescan (every file stat'ed, as every poll did before the incremental scan).
func BenchmarkPollYearArea(b *testing.B) {
	end := time.Now().Add(-time.Hour)
	root := yearArea(b, end)
	s, cursor := settledSpy(b, root, end, "")
	b.Logf("remembered %d uploads and markers of 80,000", len(s.entries))
	benchPolls(b, s, root, cursor, "")
	b.Run("full-rescan", func(b *testing.B) {
		for b.Loop() {
			s.scanMu.Lock()
			s.lastFull = time.Time{}
			s.scanMu.Unlock()
			if _, err := s.Poll(context.Background(), cursor); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPollYearAreaNotified: the same polls of a year's area with the kernel's notifications
// trusted (the temp dir's file system must be local: ext4, tmpfs, ...), against notifications off: with
// them, one new file costs its own stat, not a listing of the 120,000-file folder.
func BenchmarkPollYearAreaNotified(b *testing.B) {
	end := time.Now().Add(-time.Hour)
	root := yearArea(b, end)
	ft, err := fsTypeOf(root)
	if err != nil {
		b.Fatal(err)
	}
	if name, ok := trustedFSType(ft); !ok {
		b.Skipf("the temp dir is on %s: notifications are not trusted there", name)
	}
	for _, mode := range []Notifications{NotificationsOff, NotificationsAuto} {
		s, cursor := settledSpy(b, root, end, mode)
		benchPolls(b, s, root, cursor, string(mode)+"/")
		s.Close()
	}
}
