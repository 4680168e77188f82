package conddb

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// BenchmarkPollOverHistory: one poll of the spy after a commit to the file (one IOV appended to one
// tag, so the data version moved and the spy must count), on a condition DB of 40 run-based tags
// holding a year (2,000 IOVs a tag) and ten years (20,000). With 50 runs open the floors are the IOVs
// in effect at the lowest; with none (every run released, between fills) each tag is read from its
// newest IOV. Either way the poll's cost is the open work, not the years (docs/benchmarks.md).
func BenchmarkPollOverHistory(b *testing.B) {
	ctx := context.Background()
	const tags, runsAYear = 40, 2000
	end := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, years := range []int{1, 10} {
		path := filepath.Join(b.TempDir(), "conddb.db")
		n := years * runsAYear
		names := historyDB(b, path, tags, n, years, end)
		for _, open := range []int{0, 50} {
			b.Run(fmt.Sprintf("years=%d/open=%d", years, open), func(b *testing.B) {
				h := &openHints{tags: names}
				for r := range open {
					h.runs = append(h.runs, pcl.OpenRun{Run: uint32(300000 + n - open + r)})
				}
				s, err := New(Config{DSN: "sqlite:" + path, Hints: h, Clock: clock.NewFake(end)})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				w, err := conddbv2.OpenWriter(ctx, path)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				res, err := s.Poll(ctx, "")
				if err != nil {
					b.Fatal(err)
				}
				cursor, since := res.Cursor, uint64(300000+n+open*years) // above every run of this case
				for b.Loop() {
					b.StopTimer()
					since++
					iov := conddbv2.IOV{Tag: names[0], Since: since, Payload: fmt.Sprintf("%040x", 1), Inserted: end}
					if err := w.AppendIOV(ctx, iov); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					res, err := s.Poll(ctx, cursor)
					if err != nil || len(res.Observations) != 1 {
						b.Fatalf("%d observations, %v; want the one appended", len(res.Observations), err)
					}
					cursor = res.Cursor
				}
			})
		}
	}
}

// historyDB writes a condition DB of tags run-based tags with n IOVs each, one a run from 300000,
// inserted evenly over the years up to end, and returns the tags' names.
func historyDB(b *testing.B, path string, tags, n, years int, end time.Time) []string {
	ctx := context.Background()
	w, err := conddbv2.Create(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	hash := fmt.Sprintf("%040x", 1)
	if err := w.InsertPayload(ctx, conddbv2.Payload{Hash: hash, ObjectType: "SiStripApvGain"}); err != nil {
		b.Fatal(err)
	}
	var names []string
	for t := range tags {
		name := fmt.Sprintf("Tag%02d_PCL_v0_prompt", t)
		names = append(names, name)
		if err := w.InsertTag(ctx, conddbv2.TagInfo{Name: name, TimeType: "Run", ObjectType: "SiStripApvGain", Synchronization: "pcl"}); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	step := time.Duration(years) * 365 * 24 * time.Hour / time.Duration(n)
	for _, name := range names {
		for r := range n {
			at := end.Add(-time.Duration(n-r) * step)
			if _, err := tx.ExecContext(ctx, `INSERT INTO "IOV" ("TAG_NAME", "SINCE", "PAYLOAD_HASH", "INSERTION_TIME") VALUES (?, ?, ?, ?)`,
				name, 300000+r, hash, conddbv2.FormatTime(at)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return names
}
