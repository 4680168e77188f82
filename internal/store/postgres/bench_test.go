package postgres

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// The benchmarks run each measurement on both stores in the same run, SQLite first, so that the two
// figures come from the same machine at the same moment (docs/benchmarks.md). Their shapes are those of
// the SQLite store's own benchmarks (internal/store/sqlite/bench_test.go, internal/steer/bench_test.go).

// benchBatch is the size of one append: about what the condition DB spy reads in one poll after a
// backlog, and what a harvest-area rescan produces.
const benchBatch = 1000

// bothStores opens a fresh store of each kind for a sub-benchmark.
func bothStores() []struct {
	name string
	open func(b *testing.B) store.Store
} {
	return []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"sqlite", func(b *testing.B) store.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) store.Store {
			s, err := Open(context.Background(), pgtest.Schema(b), Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
	}
}

// benchObservations makes n distinct observations shaped like a busy day of the loop: mostly IOVs of
// the prompt tags, with harvest files, upload verdicts and DQM results among them (the SQLite
// benchmark's shape).
func benchObservations(n, offset int) []pcl.Observation {
	tags := []string{"SiStripApvGain_PCL_v0_prompt", "SiStripApvGain_PCL_v0_hlt", "SiPixelAli_PCL_v0_hlt_off",
		"BeamSpotObjects_PCL_byLumi_v0_prompt", "SiPixelQuality_byPCL_prompt_v2", "LumiPCC_Corrections_prompt"}
	base := time.Date(2025, 6, 14, 8, 0, 0, 0, time.UTC)
	out := make([]pcl.Observation, n)
	for i := range n {
		k := offset + i
		run := 380000 + uint32(k/len(tags))
		tag := tags[k%len(tags)]
		at := base.Add(time.Duration(k) * 1700 * time.Millisecond)
		hash := fmt.Sprintf("%08x%032x", run, uint64(k)*2654435761)
		switch k % 10 {
		case 7:
			out[i] = pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: run, At: at,
				Seen: at.Add(75 * time.Second), Workflow: "SiStripGains", InputTag: "SiStripApvGain_pcl",
				File:         fmt.Sprintf("Run%d@SiStripApvGain_pcl@3f9c%04x-1b2a-4c3d-9e8f-%012d.db", run, k%65536, k),
				Destinations: []string{"SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt"},
				Payloads:     []pcl.IOV{{Since: uint64(run), Payload: hash}}}
		case 8:
			out[i] = pcl.Observation{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: run, At: at,
				Seen: at.Add(90 * time.Second), Workflow: "SiStripGains", InputTag: "SiStripApvGain_pcl",
				File: fmt.Sprintf("Run%d@SiStripApvGain_pcl@%012d.db", run, k), FileHash: hash, Tag: tag,
				Status: pcl.UploadOK, Info: "Upload finished: 1 IOV appended to " + tag}
		case 9:
			out[i] = pcl.Observation{Source: pcl.SourceDQM, Kind: pcl.KindDQMQuality, Run: run, At: at,
				Seen: at.Add(3 * time.Minute), Workflow: "SiStripGains", Quality: pcl.QualityGood,
				Dataset: "/StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT"}
		default:
			out[i] = pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: run, At: at,
				Seen: at.Add(2 * time.Minute), Tag: tag, Since: uint64(run), TimeType: pcl.TimeRun,
				Inserted: at, Payload: hash, Previous: fmt.Sprintf("%040x", k)}
		}
	}
	return out
}

// BenchmarkAppendObservations appends batches of 1000 new observations through each store: validation,
// keys, JSON, an insert that skips stored facts, the new ones returned. obs/s is the store's rate.
func BenchmarkAppendObservations(b *testing.B) {
	for _, kind := range bothStores() {
		b.Run(kind.name, func(b *testing.B) {
			st := kind.open(b)
			ctx := context.Background()
			var took time.Duration
			n := 0
			for i := range b.N {
				b.StopTimer()
				obs := benchObservations(benchBatch, i*benchBatch)
				b.StartTimer()
				start := time.Now()
				added, err := st.AppendObservations(ctx, obs)
				took += time.Since(start)
				if err != nil || len(added) != benchBatch {
					b.Fatalf("append: %d added, err %v", len(added), err)
				}
				n += benchBatch
			}
			b.ReportMetric(float64(n)/took.Seconds(), "obs/s")
		})
	}
}

// BenchmarkFirstUnreadyRun measures one Tier-0 poll of first_unready_run against each store holding a
// year of runs (3000, each with a state of 18 workflows), through the pull API's handler.
func BenchmarkFirstUnreadyRun(b *testing.B) {
	t0 := time.Date(2025, 6, 14, 8, 0, 0, 0, time.UTC)
	workflows := make([]pcl.WorkflowStatus, 18)
	for i := range workflows {
		workflows[i] = pcl.WorkflowStatus{Name: "Workflow" + string(rune('A'+i)), State: pcl.StateInDB, Required: true, Flags: []pcl.Flag{}}
	}
	for _, kind := range bothStores() {
		b.Run(kind.name, func(b *testing.B) {
			st := kind.open(b)
			ctx := context.Background()
			for run := uint32(380000); run < 383000; run++ {
				d := pcl.Decision{Run: run, State: pcl.ReadinessReady, Releasable: true, Version: 1, Decided: t0, Blocking: []string{}}
				if run == 382990 {
					d.State, d.Releasable = pcl.ReadinessWaiting, false
				}
				if _, err := st.SaveDecision(ctx, store.DecisionWrite{Decision: d,
					State: pcl.RunState{Run: run, Class: "Collisions25", Workflows: workflows, Decision: d}}); err != nil {
					b.Fatal(err)
				}
			}
			_, first := steer.PullHandlers(steer.StoreSource{Store: st}, pcl.DefaultPolicy())
			b.ResetTimer()
			for b.Loop() {
				rec := httptest.NewRecorder()
				first(rec, httptest.NewRequest(http.MethodGet, "/t0/v1/first_unready_run", nil))
				if rec.Code != 200 || rec.Body.String() != "{\"result\": [\n 382990\n]}\n" {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
