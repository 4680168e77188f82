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

// BenchmarkPollDecadeArea: the polls of BenchmarkPollYearArea on a year's area and on ten years'
// (1.2 million files in ten year folders), notifications off and, where the temp dir's file system
// lets them be trusted, auto. A decade must cost what a year does: the older years' folders do not
// change, so they are neither listed nor their files stat'ed again. Slow to set up (the files are
// written once per size).
func BenchmarkPollDecadeArea(b *testing.B) {
	end := time.Now().Add(-time.Hour)
	ctx := context.Background()
	i := 0
	for _, years := range []int{1, 10} {
		root := yearsArea(b, end, years)
		modes := []Notifications{NotificationsOff}
		if ft, err := fsTypeOf(root); err == nil {
			if _, ok := trustedFSType(ft); ok {
				modes = append(modes, NotificationsAuto)
			}
		}
		for _, mode := range modes {
			s, err := New(Config{Dir: root, Clock: clock.NewFake(end.Add(time.Hour)), Notifications: mode})
			if err != nil {
				b.Fatal(err)
			}
			res, err := s.Poll(ctx, "")
			if err != nil {
				b.Fatal(err)
			}
			cursor := res.Cursor
			time.Sleep(DefaultMtimeSlack + 100*time.Millisecond)
			if _, err := s.Poll(ctx, cursor); err != nil {
				b.Fatal(err)
			}
			name := fmt.Sprintf("years=%d/%s", years, mode)
			b.Run(name+"/nothing-new", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.Poll(ctx, cursor); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/one-new-file", func(b *testing.B) {
				dir := filepath.Join(root, "2026")
				for b.Loop() {
					i++
					p := filepath.Join(dir, fmt.Sprintf("Run393993@SiStripApvGain_pcl@bench%d.txt.uploaded", i))
					if err := os.WriteFile(p, []byte("prodMetaData {}"), 0o644); err != nil {
						b.Fatal(err)
					}
					res, err := s.Poll(ctx, cursor)
					if err != nil || len(res.Observations) == 0 {
						b.Fatalf("%d observations, %v", len(res.Observations), err)
					}
					cursor = res.Cursor
				}
			})
			s.Close()
		}
	}
}

// BenchmarkPollYearArea: one poll of a year's area (120,000 files) with nothing new, with one new
// file, and a full rescan (every file stat'ed, as every poll did before the incremental scan).
func BenchmarkPollYearArea(b *testing.B) {
	end := time.Now().Add(-time.Hour)
	root := yearArea(b, end)
	ctx := context.Background()
	s, err := New(Config{Dir: root, Clock: clock.NewFake(end.Add(time.Hour))})
	if err != nil {
		b.Fatal(err)
	}
	res, err := s.Poll(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	cursor := res.Cursor
	time.Sleep(DefaultMtimeSlack + 100*time.Millisecond) // let the directories' times settle
	if _, err := s.Poll(ctx, cursor); err != nil {
		b.Fatal(err)
	}
	b.Logf("remembered %d uploads and markers of 80,000", len(s.entries))

	b.Run("nothing-new", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Poll(ctx, cursor); err != nil {
				b.Fatal(err)
			}
		}
	})
	i := 0 // across -count's repeats of the sub-benchmark too: each file must be new
	b.Run("one-new-file", func(b *testing.B) {
		dir := filepath.Join(root, "2026")
		for b.Loop() {
			i++
			p := filepath.Join(dir, fmt.Sprintf("Run393993@SiStripApvGain_pcl@bench%d.txt.uploaded", i))
			if err := os.WriteFile(p, []byte("prodMetaData {}"), 0o644); err != nil {
				b.Fatal(err)
			}
			res, err := s.Poll(ctx, cursor)
			if err != nil || len(res.Observations) == 0 {
				b.Fatalf("%d observations, %v", len(res.Observations), err)
			}
			cursor = res.Cursor
		}
	})
	b.Run("full-rescan", func(b *testing.B) {
		for b.Loop() {
			s.scanMu.Lock()
			s.lastFull = time.Time{}
			s.scanMu.Unlock()
			if _, err := s.Poll(ctx, cursor); err != nil {
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
	ctx := context.Background()
	i := 0
	for _, mode := range []Notifications{NotificationsOff, NotificationsAuto} {
		s, err := New(Config{Dir: root, Clock: clock.NewFake(end.Add(time.Hour)), Notifications: mode})
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Poll(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		cursor := res.Cursor
		time.Sleep(DefaultMtimeSlack + 100*time.Millisecond)
		if _, err := s.Poll(ctx, cursor); err != nil {
			b.Fatal(err)
		}
		b.Run(string(mode)+"/nothing-new", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Poll(ctx, cursor); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(mode)+"/one-new-file", func(b *testing.B) {
			dir := filepath.Join(root, "2026")
			for b.Loop() {
				i++
				p := filepath.Join(dir, fmt.Sprintf("Run393993@SiStripApvGain_pcl@bench%d.txt.uploaded", i))
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
		s.Close()
	}
}
