// Package conddbtest writes condition DB files for tests and benchmarks of what reads them: CondDB v2's
// schema (through conddbv2's writer) holding years of IOVs, written in one transaction.
package conddbtest

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/conddbv2"
)

// FirstRun is the run of each tag's first IOV in a History file.
const FirstRun = 300000

// History writes at path a condition DB of tags run-based PCL tags (synchronization pcl), each with n
// IOVs, one a run from FirstRun, inserted evenly over span up to end, all of one payload; it returns the
// tags' names.
func History(tb testing.TB, path string, tags, n int, span time.Duration, end time.Time) []string {
	tb.Helper()
	ctx := context.Background()
	w, err := conddbv2.Create(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	hash := Hash
	if err := w.InsertPayload(ctx, conddbv2.Payload{Hash: hash, ObjectType: "SiStripApvGain"}); err != nil {
		tb.Fatal(err)
	}
	var names []string
	for t := range tags {
		name := fmt.Sprintf("Tag%02d_PCL_v0_prompt", t)
		names = append(names, name)
		if err := w.InsertTag(ctx, conddbv2.TagInfo{Name: name, TimeType: "Run", ObjectType: "SiStripApvGain", Synchronization: "pcl"}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	step := span / time.Duration(n)
	for _, name := range names {
		for r := range n {
			at := end.Add(-time.Duration(n-1-r) * step)
			if _, err := tx.ExecContext(ctx, `INSERT INTO "IOV" ("TAG_NAME", "SINCE", "PAYLOAD_HASH", "INSERTION_TIME") VALUES (?, ?, ?, ?)`,
				name, FirstRun+r, hash, conddbv2.FormatTime(at)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	return names
}

// Hash is the payload every IOV of a History file points to.
var Hash = fmt.Sprintf("%040x", 1)

// HistoryFile is one file History wrote.
type HistoryFile struct {
	Years int       // the years of runs it holds
	IOVs  int       // per tag, one a run from FirstRun
	Path  string    // the SQLite file
	Tags  []string  // its tags
	End   time.Time // the newest IOV's insertion time
}

// Histories writes the two files the condition DB benchmarks compare: 40 tags holding a year of runs
// (2,000 IOVs a tag, about CMS's runs in a year) and ten years (20,000), inserted up to the same end.
func Histories(b *testing.B) []HistoryFile {
	b.Helper()
	const tags, runsAYear = 40, 2000
	end := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var out []HistoryFile
	for _, years := range []int{1, 10} {
		h := HistoryFile{Years: years, IOVs: years * runsAYear, Path: filepath.Join(b.TempDir(), "conddb.db"), End: end}
		h.Tags = History(b, h.Path, tags, h.IOVs, time.Duration(years)*365*24*time.Hour, end)
		out = append(out, h)
	}
	return out
}
