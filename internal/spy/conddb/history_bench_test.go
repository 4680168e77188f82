package conddb

import (
	"context"
	"fmt"
	"testing"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/conddbv2/conddbtest"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// BenchmarkPollOverHistory: one poll of the spy after a commit to the file (one IOV appended to one
// tag, so the data version moved and the spy must count), on a condition DB of 40 run-based tags
// holding a year (2,000 IOVs a tag) and ten years (20,000). With 50 runs open the floors are the IOVs
// in effect at the lowest; with none (every run released, between fills) each tag is read from its
// newest IOV. Either way the poll's cost is the open work, not the years (docs/benchmarks.md).
func BenchmarkPollOverHistory(b *testing.B) {
	ctx := context.Background()
	for _, hf := range conddbtest.Histories(b) {
		years, n, names, end, path := hf.Years, hf.IOVs, hf.Tags, hf.End, hf.Path
		for _, open := range []int{0, 50} {
			b.Run(fmt.Sprintf("years=%d/open=%d", years, open), func(b *testing.B) {
				h := &openHints{tags: names}
				for r := range open {
					h.runs = append(h.runs, pcl.OpenRun{Run: uint32(conddbtest.FirstRun + n - open + r)})
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
				cursor, since := res.Cursor, uint64(conddbtest.FirstRun+n+open*years) // above every run of this case
				for b.Loop() {
					b.StopTimer()
					since++
					iov := conddbv2.IOV{Tag: names[0], Since: since, Payload: conddbtest.Hash, Inserted: end}
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
