package agency

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestFactsAreTheStores: whatever the spies and operators write, in whatever order, the facts the
// agency remembers of each open run are exactly what reading the store gives (the same observations,
// decoded alike, in the store's order, the IOVs of its payloads after them), and its remembered state
// is the stored one. Runs, harvested files with several payloads, IOVs of those payloads under other
// runs' since, facts at equal times (ordered by key), repeats and overrides, in a seeded random order.
func TestFactsAreTheStores(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			rng := rand.New(rand.NewPCG(seed, 42))
			runs := []uint32{run, run + 1, run + 2}
			hashOf := func(r uint32, i int) string { return fmt.Sprintf("%040x", uint64(r)*16+uint64(i)) }
			var batch []pcl.Observation
			for _, r := range runs {
				o := stoppedRun()
				o.Run = r
				batch = append(batch, o)
				c := config()
				c.Run = r
				batch = append(batch, c)
			}
			h.ingest(pcl.SourceOMS, batch...)
			var sent []pcl.Observation
			for step := range 60 {
				h.clk.Advance(time.Duration(rng.IntN(5)) * time.Minute)
				r := runs[rng.IntN(len(runs))]
				var o pcl.Observation
				switch rng.IntN(6) {
				case 0, 1:
					o = harvestFile()
					o.Run = r
					o.File = fmt.Sprintf("Run%d@SiStripApvGain_pcl@%02d.db", r, step)
					o.At = t0.Add(time.Duration(rng.IntN(3)) * time.Hour) // equal times: the key orders them
					o.Payloads = []pcl.IOV{{Since: uint64(r), Payload: hashOf(r, rng.IntN(3))}, {Since: uint64(r), Payload: hashOf(r, 3)}}
				case 2, 3:
					since := runs[rng.IntN(len(runs))] // moved up, or not
					o = iovAt("SiStripApvGain_PCL_v0_hlt", uint64(since), time.Duration(step)*time.Minute)
					o.Payload = hashOf(r, rng.IntN(4))
				case 4:
					if len(sent) > 0 { // a repeat, as a second poll sees the same fact
						o = sent[rng.IntN(len(sent))]
						break
					}
					o = streamDone(h.clk.Now())
				case 5:
					if _, err := h.ag.Override(h.ctx, r, pcl.OverrideAccept, "SiStripGains", "shifter", fmt.Sprintf("step %d", step)); err != nil {
						t.Fatal(err)
					}
				}
				if o.Kind != "" {
					src := o.Source
					o.Source = src
					h.ingest(src, o)
					sent = append(sent, o)
				}
				if rng.IntN(4) == 0 {
					h.ag.Resync()
					h.pass()
				}
				for _, r := range h.ag.OpenRuns() {
					got, err := h.ag.facts.gather(h.ctx, h.st, r)
					if err != nil {
						t.Fatal(err)
					}
					want, err := gatherStored(h.ctx, h.st, r)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("step %d, run %d: remembered facts differ from the store's:\n got %d: %v\nwant %d: %v", step, r, len(got), seqsOf(got), len(want), seqsOf(want))
					}
					if rs, encoded, ok := h.ag.facts.state(r); ok {
						stored, err := h.st.RunState(h.ctx, r)
						if err != nil {
							t.Fatal(err)
						}
						a, _ := json.Marshal(rs)
						b, _ := json.Marshal(stored)
						if encoded != nil && string(encoded) != string(a) {
							t.Fatalf("step %d, run %d: remembered encoding is not of the remembered state", step, r)
						}
						if string(a) != string(b) {
							t.Fatalf("step %d, run %d: remembered state differs from the stored one:\n got %s\nwant %s", step, r, a, b)
						}
					}
				}
			}
		})
	}
}

func seqsOf(obs []pcl.Observation) []int64 {
	out := make([]int64, len(obs))
	for i, o := range obs {
		out[i] = o.Seq
	}
	return out
}

// TestFactsFollowOpenWork: the facts remembered are of open runs only: a run that closes (released,
// its workflows final) is dropped at the next resync, a reload forgets everything, and Forget one run.
func TestFactsFollowOpenWork(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.pass()
	if runs, _ := h.ag.facts.size(); runs != 1 {
		t.Fatalf("%d runs remembered after the first pass, want 1", runs)
	}
	h.ag.Forget(run)
	if runs, _ := h.ag.facts.size(); runs != 0 {
		t.Fatalf("%d runs remembered after Forget", runs)
	}
	h.ag.Resync()
	h.pass()
	if err := h.ag.Reload(h.ctx); err != nil {
		t.Fatal(err)
	}
	if runs, payloads := h.ag.facts.size(); runs != 0 || payloads != 0 {
		t.Fatalf("after a reload: %d runs and %d payloads remembered", runs, payloads)
	}
	h.ag.Resync()
	h.pass()
	h.ag.facts.keep(nil) // as a resync does once no run is open
	if runs, payloads := h.ag.facts.size(); runs != 0 || payloads != 0 {
		t.Fatalf("with no open run: %d runs and %d payloads remembered", runs, payloads)
	}
}
