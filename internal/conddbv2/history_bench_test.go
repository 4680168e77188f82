package conddbv2_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/conddbv2/conddbtest"
)

// BenchmarkReadsOverHistory: what the condition DB spy asks of a file on each poll that finds it
// changed, on a condition DB of 40 run-based tags holding a year (2,000 IOVs a tag) and ten years
// (20,000) of runs: the count of every tag's rows, and one tag's rows inserted in the last hour. Over
// the whole tag both scan its entries of the primary key (TAG_NAME, SINCE, INSERTION_TIME), growing
// with its history; from a floor (the IOV in effect at the lowest open run, as the spy asks when runs
// are open) they read a range of it, the open work (docs/benchmarks.md).
func BenchmarkReadsOverHistory(b *testing.B) {
	ctx := context.Background()
	for _, h := range conddbtest.Histories(b) {
		years, n, names, end, tags := h.Years, h.IOVs, h.Tags, h.End, len(h.Tags)
		db, err := conddbv2.OpenFile(ctx, h.Path, conddbv2.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("years=%d/counts", years), func(b *testing.B) {
			for b.Loop() {
				c, err := db.IOVCounts(ctx, names)
				if err != nil || len(c) != tags || c[names[0]].Rows != int64(n) {
					b.Fatalf("%v %v", c[names[0]], err)
				}
			}
		})
		// What the spy asks with open runs: the rows from the IOV in effect at the lowest open run up
		// (here the last 50 runs), found by one lookup per tag.
		b.Run(fmt.Sprintf("years=%d/counts-from-floor", years), func(b *testing.B) {
			for b.Loop() {
				floors := map[string]uint64{}
				for _, name := range names {
					at, ok, err := db.InEffect(ctx, name, uint64(conddbtest.FirstRun+n-50))
					if err != nil || !ok {
						b.Fatal(at, ok, err)
					}
					floors[name] = at
				}
				c, err := db.IOVCountsFrom(ctx, names, floors)
				if err != nil || len(c) != tags || c[names[0]].Rows != 50 {
					b.Fatalf("%v %v", c[names[0]], err)
				}
			}
		})
		b.Run(fmt.Sprintf("years=%d/last-hour-from-floor", years), func(b *testing.B) {
			for b.Loop() {
				if _, err := db.IOVsFrom(ctx, names[0], end.Add(-time.Hour), uint64(conddbtest.FirstRun+n-50), 1000); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("years=%d/last-hour", years), func(b *testing.B) {
			for b.Loop() {
				if _, err := db.IOVs(ctx, names[0], end.Add(-time.Hour), 1000); err != nil {
					b.Fatal(err)
				}
			}
		})
		db.Close()
	}
}
