package reconcile

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// randomWorld draws a run's observations: any subset of the loop's events for any workflow, with random
// times, hashes that may or may not match, failures, overrides and releases. Most draws are incoherent
// as CMS goes; the invariant must hold for all of them.
func randomWorld(r *rand.Rand) ([]pcl.Observation, pcl.Policy, time.Duration, map[pcl.Source]SourceView, uint32) {
	var obs []pcl.Observation
	dur := func(max time.Duration) time.Duration { return time.Duration(r.Int64N(int64(max))) }
	// Sources keep their own clocks: now and then a file or a log line is dated a little before the
	// stop OMS reported.
	skewed := func(max time.Duration) time.Duration {
		if r.IntN(8) == 0 {
			return -dur(time.Hour)
		}
		return dur(max)
	}
	hashes := []string{h1, h2, "c2f56b2dca1e8257d19233e5380d79317030b957"}
	hash := func() string { return hashes[r.IntN(len(hashes))] }
	if r.IntN(10) > 0 {
		class := []string{"Collisions25", "Cosmics25", "HIRun2025", "Commissioning25"}[r.IntN(4)]
		if r.IntN(5) == 0 {
			obs = append(obs, runObs(class, nil))
		} else {
			stop := t0
			if r.IntN(8) == 0 {
				stop = t0.Add(-4*time.Hour + dur(10*time.Minute))
			}
			obs = append(obs, runObs(class, &stop))
		}
	}
	if r.IntN(6) > 0 {
		cfg := collisionsConfig()
		for _, c := range cfg {
			if r.IntN(4) > 0 {
				obs = append(obs, c)
			}
		}
	}
	for _, s := range []string{"Express", "ExpressAlignment"} {
		if r.IntN(3) == 0 {
			obs = append(obs, streamDone(s, dur(30*time.Hour)))
			if r.IntN(4) == 0 { // seen done again at a later poll
				obs = append(obs, streamDone(s, dur(30*time.Hour)))
			}
		}
	}
	for _, w := range catalog.Workflows() {
		for _, in := range w.Inputs {
			if r.IntN(3) == 0 {
				continue
			}
			var hs []string
			if r.IntN(5) > 0 {
				hs = append(hs, hash())
			}
			obs = append(obs, harvest(in.Tag, skewed(30*time.Hour), hs...))
			if r.IntN(2) == 0 {
				obs = append(obs, marker(in.Tag, skewed(30*time.Hour)))
			}
			for _, dest := range in.Destinations {
				if r.IntN(2) == 0 {
					st := []pcl.UploadStatus{pcl.UploadOK, pcl.UploadOK, pcl.UploadSkip, pcl.UploadFail, pcl.UploadTooLate}[r.IntN(5)]
					obs = append(obs, upload(in.Tag, dest, st, skewed(30*time.Hour)))
				}
				for range r.IntN(3) { // none, one, or two rows (another run's, a re-upload)
					since := uint64(testRun + r.IntN(3) - 1)
					if in.TimeType == pcl.TimeLumi {
						since = pcl.PackLumi(uint32(since), uint32(1+r.IntN(50)))
					}
					o := iov(dest, since, hash(), dur(30*time.Hour)-2*time.Hour)
					switch r.IntN(10) {
					case 0:
						o.Synchronization = "" // read before the spy gave it, or a tag not known yet
					case 1:
						o.Synchronization = []string{"pcl", "hlt", "prompt", "express", "any"}[r.IntN(5)]
					}
					obs = append(obs, o)
				}
			}
		}
		if r.IntN(10) == 0 {
			obs = append(obs, override(pcl.OverrideAccept, w.Name, dur(60*time.Hour)))
		}
		if r.IntN(8) == 0 {
			q := []pcl.Quality{pcl.QualityGood, pcl.QualityWarning, pcl.QualityBad, pcl.QualityUnknown, pcl.QualityInsufficient}[r.IntN(5)]
			obs = append(obs, quality(w.Name, q, dur(30*time.Hour)))
		}
	}
	for i := r.IntN(3); i > 0; i-- {
		a := []pcl.OverrideAction{pcl.OverrideHold, pcl.OverrideRelease, pcl.OverrideClear}[r.IntN(3)]
		obs = append(obs, override(a, "", dur(60*time.Hour)))
	}
	if r.IntN(12) == 0 {
		obs = append(obs, release(dur(60*time.Hour)))
	}
	p := pcl.DefaultPolicy()
	switch r.IntN(5) {
	case 0:
		p = onlyGains(pcl.OnTimeoutHold)
	case 1:
		p = onlyGains(pcl.OnTimeoutRelease)
	case 2: // a class that accepts any absence, and one workflow that must always deliver
		p.Classes[0].NoPayloadOK = []string{"SiPixelAli"}
		p.Classes[0].RequirePayload = []string{"SiStripGains"}
	}
	var sources map[pcl.Source]SourceView
	if r.IntN(2) == 0 {
		sources = freshSources(dur(40 * time.Hour))
	}
	return obs, p, dur(60 * time.Hour), sources, uint32(testRun - 1 + r.IntN(3))
}

// TestPropertySafetyAndDeterminism draws thousands of worlds. For each: the safety invariant holds, and
// the same observations shuffled and partly duplicated give exactly the same state.
func TestPropertySafetyAndDeterminism(t *testing.T) {
	t.Parallel()
	n := 3000
	if testing.Short() {
		n = 300
	}
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
		obs, p, now, sources, fcsr := randomWorld(r)
		before, _ := json.Marshal(obs)
		in := Input{Run: testRun, Observations: obs, Catalogue: catalog, Policy: p, Sources: sources, FCSR: fcsr, Now: at(now)}
		want := Reconcile(in)
		if after, _ := json.Marshal(obs); string(after) != string(before) {
			t.Fatalf("seed %d: Reconcile modified its observations (the agency reuses them)", seed)
		}
		checkInvariant(t, want, p)
		if t.Failed() {
			t.Fatalf("seed %d: invariant broken", seed)
		}
		shuffled := append([]pcl.Observation(nil), obs...)
		for i := r.IntN(len(obs) + 1); i > 0; i-- {
			shuffled = append(shuffled, obs[r.IntN(len(obs))])
		}
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		in.Observations = shuffled
		got := Reconcile(in)
		if a, b := mustJSON(t, want), mustJSON(t, got); a != b {
			t.Fatalf("seed %d: order or duplicates changed the result:\n%s\nvs\n%s", seed, a, b)
		}
	}
}

// TestPropertyMonotoneInTime: for a fixed set of observations, a run once ready stays releasable as time
// passes (deadlines only ever release or hold, they never take back a ready run).
func TestPropertyMonotoneInTime(t *testing.T) {
	t.Parallel()
	for seed := range 500 {
		r := rand.New(rand.NewPCG(uint64(seed), 0x7177))
		obs, p, _, sources, fcsr := randomWorld(r)
		wasReady := false
		for h := 0; h <= 60; h += 3 {
			rs := Reconcile(Input{Run: testRun, Observations: obs, Catalogue: catalog, Policy: p, Sources: sources, FCSR: fcsr, Now: at(time.Duration(h) * time.Hour)})
			checkInvariant(t, rs, p)
			if wasReady && !rs.Decision.Releasable {
				t.Fatalf("seed %d: ready run became %s at +%dh", seed, rs.Decision.State, h)
			}
			wasReady = wasReady || rs.Decision.State == pcl.ReadinessReady
		}
	}
}

// TestPropertyMilestonesOrdered: in every world, every workflow's milestones follow the loop, stop ≤
// express-done ≤ harvested ≤ upload-sent ≤ uploaded ≤ in-db (those passed), whatever the sources'
// clocks said, and express-done, which no source dates, is always marked observed.
func TestPropertyMilestonesOrdered(t *testing.T) {
	t.Parallel()
	for seed := range 3000 {
		r := rand.New(rand.NewPCG(uint64(seed), 0x0dde))
		obs, p, now, sources, fcsr := randomWorld(r)
		rs := Reconcile(Input{Run: testRun, Observations: obs, Catalogue: catalog, Policy: p, Sources: sources, FCSR: fcsr, Now: at(now)})
		for _, ws := range rs.Workflows {
			m := ws.Milestones
			prev, prevName := m.Stop, pcl.MilestoneStop
			for _, k := range pcl.AllMilestones[1:] {
				tm := m.Get(k)
				if tm.IsZero() {
					continue
				}
				if tm.Before(prev) {
					t.Fatalf("seed %d: %s %s at %s, before %s at %s", seed, ws.Name, k, tm, prevName, prev)
				}
				prev, prevName = tm, k
			}
			if !m.ExpressDone.IsZero() && !m.Observed.Has(pcl.MilestoneExpressDone) {
				t.Fatalf("seed %d: %s express-done not marked observed", seed, ws.Name)
			}
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// benchWorld is a run with 20 workflows and about 100 observations: every workflow expected (each
// stream configured with its producers), each input of each through the whole loop to every destination
// tag.
func benchWorld() (*pcl.Catalogue, []pcl.Observation) {
	ws := pcl.DefaultWorkflows()
	for i := range 2 {
		ws = append(ws, pcl.Workflow{Name: fmt.Sprintf("Extra%d", i), Producer: fmt.Sprintf("PromptCalibProdExtra%d", i),
			Streams: []string{"Express"}, Inputs: []pcl.Input{{Tag: fmt.Sprintf("Extra%d_pcl", i), TimeType: pcl.TimeRun,
				Destinations: []string{fmt.Sprintf("Extra%d_PCL_v0_prompt", i)}}}})
	}
	cat, err := pcl.NewCatalogue(ws)
	if err != nil {
		panic(err)
	}
	producers := map[string][]string{}
	var streams []string
	for _, w := range ws {
		for _, st := range w.Streams {
			if producers[st] == nil {
				streams = append(streams, st)
			}
			producers[st] = append(producers[st], w.Producer)
		}
	}
	obs := []pcl.Observation{stopped()}
	for _, st := range streams {
		obs = append(obs, expressConfig(st, producers[st]...), streamDone(st, 5*time.Hour))
	}
	for i, w := range ws {
		for j, in := range w.Inputs {
			hash := fmt.Sprintf("%038x%02x", i+1, j)
			h := pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: testRun, At: at(time.Hour), InputTag: in.Tag,
				Workflow: w.Name, File: "Run392680@" + in.Tag + "@0b1d6e5a-1111-2222-3333-444455556666.db", Destinations: in.Destinations,
				Payloads: []pcl.IOV{{Since: pcl.SinceOfRun(in.TimeType, testRun), Payload: hash}}}
			obs = append(obs, h, pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindUploadMarker, Run: testRun, At: at(61 * time.Minute),
				InputTag: in.Tag, File: "Run392680@" + in.Tag + "@0b1d6e5a-1111-2222-3333-444455556666.txt.uploaded"})
			for _, d := range in.Destinations {
				obs = append(obs, pcl.Observation{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: testRun, At: at(70 * time.Minute),
					Workflow: w.Name, InputTag: in.Tag, File: h.File, FileHash: hash, Tag: d, Status: pcl.UploadOK, Info: "Upload finished"},
					pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: testRun, At: at(71 * time.Minute), Tag: d,
						Since: pcl.SinceOfRun(in.TimeType, testRun), Inserted: at(71 * time.Minute), Payload: hash, TimeType: in.TimeType,
						Synchronization: syncOf(d)})
			}
		}
	}
	// As read from the store: every fact has its sequence number, which the states and the decision cite.
	for i := range obs {
		obs[i].Seq = int64(1000 + i)
	}
	return cat, obs
}

// TestBenchWorldIsComplete keeps the benchmark honest: every workflow expected and in the DB.
func TestBenchWorldIsComplete(t *testing.T) {
	t.Parallel()
	cat, obs := benchWorld()
	rs := Reconcile(Input{Run: testRun, Observations: obs, Catalogue: cat, Policy: pcl.DefaultPolicy(), Sources: freshSources(6 * time.Hour), Now: at(6 * time.Hour)})
	for _, w := range rs.Workflows {
		if w.State != pcl.StateInDB {
			t.Errorf("%s: %s (%s)", w.Name, w.State, w.Reason)
		}
	}
	if rs.Decision.State != pcl.ReadinessReady || len(obs) < 90 || len(obs) > 130 {
		t.Errorf("%s with %d observations", rs.Decision.State, len(obs))
	}
	if len(rs.Decision.Evidence) < 20 {
		t.Errorf("a ready run cites %d observations", len(rs.Decision.Evidence))
	}
}

// BenchmarkReconcile: target ≥ 100,000 runs/s on one core (issue 2).
func BenchmarkReconcile(b *testing.B) {
	cat, obs := benchWorld()
	in := Input{Run: testRun, Observations: obs, Catalogue: cat, Policy: pcl.DefaultPolicy(), Sources: freshSources(6 * time.Hour), Now: at(6 * time.Hour)}
	if rs := Reconcile(in); len(rs.Workflows) != 20 {
		b.Fatalf("%d workflows", len(rs.Workflows))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Reconcile(in)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	b.ReportMetric(float64(len(obs)), "obs/run")
}
