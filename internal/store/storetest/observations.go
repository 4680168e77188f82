package storetest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func observationTests() []subtest {
	return []subtest{
		{"AppendIdempotent", testAppendIdempotent},
		{"AppendDuplicatesWithinBatch", testAppendDuplicatesWithinBatch},
		{"AppendInvalidRefusesBatch", testAppendInvalid},
		{"AppendEmpty", testAppendEmpty},
		{"ObservationsRoundTrip", testObservationsRoundTrip},
		{"ObservationsFilters", testObservationsFilters},
		{"ObservationsOrder", testObservationsOrder},
		{"AppendConcurrent", testAppendConcurrent},
		{"SequenceNumbers", testSequenceNumbers},
	}
}

func testAppendIdempotent(t *testing.T, s store.Store) {
	ctx := context.Background()
	world := fixtureWorld()
	added, err := s.AppendObservations(ctx, world)
	must(t, "first append", err)
	if !slices.Equal(keys(added), keys(world)) {
		t.Fatalf("first append returned %d observations, want all %d in input order", len(added), len(world))
	}
	// A second poll sees the same facts later: Seen moves, the fact does not.
	again := slices.Clone(world)
	for i := range again {
		again[i].Seen = again[i].Seen.Add(10 * time.Minute)
	}
	added, err = s.AppendObservations(ctx, again)
	must(t, "second append", err)
	if len(added) != 0 {
		t.Fatalf("second append of the same facts returned %d new observations, want 0", len(added))
	}
	// A batch mixing old and new facts returns only the new ones, in input order.
	run := fixtureRuns()[4]
	fresh := []pcl.Observation{
		dqmObs(run, "SiPixelAli", pcl.QualityBad, runStart(4).Add(2*time.Hour)),
		iovObs(run, "SiStripApvGain_PCL_v0_prompt", payloadHash(run+1, "SiStripApvGain_pcl"), runStart(4).Add(3*time.Hour)),
	}
	mixed := []pcl.Observation{world[3], fresh[0], world[7], fresh[1], world[0]}
	added, err = s.AppendObservations(ctx, mixed)
	must(t, "mixed append", err)
	if !slices.Equal(keys(added), keys(fresh)) {
		t.Fatalf("mixed append returned %v, want the 2 new observations %v", keys(added), keys(fresh))
	}
	stored, err := s.Observations(ctx, store.ObservationQuery{})
	must(t, "query", err)
	if len(stored) != len(world)+len(fresh) {
		t.Fatalf("store holds %d observations, want %d", len(stored), len(world)+len(fresh))
	}
}

func testAppendDuplicatesWithinBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	loop := loopOf(2, fixtureRuns()[2])
	seenLater := loop[5]
	seenLater.Seen = seenLater.Seen.Add(time.Hour)
	batch := []pcl.Observation{loop[5], loop[8], seenLater, loop[8], loop[10]}
	added, err := s.AppendObservations(ctx, batch)
	must(t, "append", err)
	want := []string{loop[5].Key(), loop[8].Key(), loop[10].Key()}
	if !slices.Equal(keys(added), want) {
		t.Fatalf("append of a batch with duplicates returned %d observations, want 3 (first occurrences, in order)", len(added))
	}
	// The first occurrence is the one kept.
	stored, err := s.Observations(ctx, store.ObservationQuery{Kinds: []pcl.Kind{pcl.KindHarvestFile}})
	must(t, "query", err)
	if len(stored) != 1 || !stored[0].Seen.Equal(loop[5].Seen) {
		t.Fatalf("stored harvest files %+v, want the first occurrence (seen %s)", stored, loop[5].Seen)
	}
}

func testAppendInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	loop := loopOf(1, fixtureRuns()[1])
	noPayload := loop[10]
	noPayload.Payload = ""
	noStream := loop[3]
	noStream.Stream = ""
	badStatus := loop[8]
	badStatus.Status = "uploaded"
	noTime := loop[2]
	noTime.At = time.Time{}
	for _, bad := range []pcl.Observation{noPayload, noStream, badStatus, noTime, {Source: pcl.SourceOMS, Kind: "lumi", Run: 392670, At: epoch()}} {
		batch := []pcl.Observation{loop[0], loop[1], bad, loop[12]}
		_, err := s.AppendObservations(ctx, batch)
		wantCode(t, fmt.Sprintf("append with an invalid %s observation", bad.Kind), err, apperr.Invalid)
		stored, err := s.Observations(ctx, store.ObservationQuery{})
		must(t, "query", err)
		if len(stored) != 0 {
			t.Fatalf("refused batch left %d observations in the store", len(stored))
		}
	}
	// The valid part goes in once it comes without the invalid one: nothing of it was half-written.
	added, err := s.AppendObservations(ctx, []pcl.Observation{loop[0], loop[1], loop[12]})
	must(t, "append valid", err)
	if len(added) != 3 {
		t.Fatalf("valid batch after refusals added %d, want 3", len(added))
	}
}

func testAppendEmpty(t *testing.T, s store.Store) {
	added, err := s.AppendObservations(context.Background(), nil)
	must(t, "append nothing", err)
	if len(added) != 0 {
		t.Fatalf("append of nothing returned %d observations", len(added))
	}
}

func testObservationsRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	world := fixtureWorld()
	// A time zone other than UTC, and Seen left zero, must come back as they went in.
	paris, err := time.LoadLocation("Europe/Zurich")
	if err == nil {
		world[2].At = world[2].At.In(paris)
	}
	world[4].Seen = time.Time{}
	_, err = s.AppendObservations(ctx, world)
	must(t, "append", err)
	stored, err := s.Observations(ctx, store.ObservationQuery{})
	must(t, "query", err)
	byKey := map[string]pcl.Observation{}
	for _, o := range stored {
		byKey[o.Key()] = o
	}
	for _, o := range world {
		got, ok := byKey[o.Key()]
		if !ok {
			t.Fatalf("%s %s of run %d not returned", o.Source, o.Kind, o.Run)
		}
		sameJSON(t, fmt.Sprintf("%s %s of run %d", o.Source, o.Kind, o.Run), o, got)
	}
}

// matches is the reference meaning of an ObservationQuery, checked against the store.
func matches(q store.ObservationQuery, o pcl.Observation) bool {
	in := func(n int, eq func(i int) bool) bool {
		if n == 0 {
			return true
		}
		for i := range n {
			if eq(i) {
				return true
			}
		}
		return false
	}
	return in(len(q.Runs), func(i int) bool { return q.Runs[i] == o.Run }) &&
		in(len(q.Kinds), func(i int) bool { return q.Kinds[i] == o.Kind }) &&
		in(len(q.Sources), func(i int) bool { return q.Sources[i] == o.Source }) &&
		in(len(q.Payloads), func(i int) bool { return o.Kind == pcl.KindIOV && q.Payloads[i] == o.Payload }) &&
		in(len(q.Tags), func(i int) bool { return q.Tags[i] == o.Tag }) &&
		(q.SeenFrom.IsZero() || (!o.Seen.IsZero() && !o.Seen.Before(q.SeenFrom))) &&
		(q.SeenTo.IsZero() || (!o.Seen.IsZero() && o.Seen.Before(q.SeenTo)))
}

// sortedByAtKey orders observations as Observations must return them.
func sortedByAtKey(obs []pcl.Observation) []pcl.Observation {
	out := slices.Clone(obs)
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Key() < out[j].Key()
	})
	return out
}

func testObservationsFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	world := fixtureWorld()
	_, err := s.AppendObservations(ctx, world)
	must(t, "append", err)
	runs := fixtureRuns()
	gainsPayload := payloadHash(runs[1], "SiStripApvGain_pcl")
	aliPayload := payloadHash(runs[3], "SiPixelAli_pcl")
	seenMid := world[len(world)/2].Seen
	queries := map[string]store.ObservationQuery{
		"run":             {Runs: []uint32{runs[2]}},
		"two runs":        {Runs: []uint32{runs[0], runs[4]}},
		"unknown run":     {Runs: []uint32{392000}},
		"kind":            {Kinds: []pcl.Kind{pcl.KindIOV}},
		"kinds":           {Kinds: []pcl.Kind{pcl.KindStreamDone, pcl.KindOverride}},
		"source":          {Sources: []pcl.Source{pcl.SourceDropbox}},
		"sources":         {Sources: []pcl.Source{pcl.SourceOMS, pcl.SourceDQM}},
		"payload":         {Payloads: []string{gainsPayload}},
		"payloads":        {Payloads: []string{gainsPayload, aliPayload}},
		"tag":             {Tags: []string{"SiStripApvGain_PCL_v0_prompt"}},
		"tags":            {Tags: []string{"SiStripApvGain_PCL_v0_hlt", "SiPixelAli_PCL_v0_hlt_off"}},
		"seen from":       {SeenFrom: seenMid},
		"seen to":         {SeenTo: seenMid},
		"seen window":     {SeenFrom: runStart(1), SeenTo: runStart(3)},
		"run and kind":    {Runs: []uint32{runs[3]}, Kinds: []pcl.Kind{pcl.KindUploadStatus, pcl.KindIOV}},
		"tag and run":     {Tags: []string{"SiStripApvGain_PCL_v0_prompt"}, Runs: []uint32{runs[0], runs[1]}},
		"kind and window": {Kinds: []pcl.Kind{pcl.KindRun}, SeenFrom: runStart(2), SeenTo: runStart(4)},
		"limit":           {Kinds: []pcl.Kind{pcl.KindIOV}, Limit: 4},
		"no match":        {Sources: []pcl.Source{pcl.SourceOMS}, Kinds: []pcl.Kind{pcl.KindIOV}},
	}
	for name, q := range queries {
		var want []pcl.Observation
		for _, o := range world {
			if matches(q, o) {
				want = append(want, o)
			}
		}
		want = sortedByAtKey(want)
		if q.Limit > 0 && len(want) > q.Limit {
			want = want[:q.Limit]
		}
		got, err := s.Observations(ctx, q)
		must(t, name, err)
		if !slices.Equal(keys(got), keys(want)) {
			t.Errorf("query %s: got %d observations, want %d", name, len(got), len(want))
		}
		// Guard the reference itself: a filter that matches everything (or nothing, where something was
		// meant) would test nothing.
		if name != "unknown run" && name != "no match" && (len(want) == 0 || len(want) == len(world)) {
			t.Errorf("query %s: fixture matches %d of %d observations; the test would not discriminate", name, len(want), len(world))
		}
	}
	// The payload filter is about IOVs: a harvest file listing the hash among its payloads is not one.
	got, err := s.Observations(ctx, store.ObservationQuery{Payloads: []string{gainsPayload}})
	must(t, "payload", err)
	for _, o := range got {
		if o.Kind != pcl.KindIOV {
			t.Errorf("payload filter returned a %s observation", o.Kind)
		}
	}
}

func testObservationsOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	world := fixtureWorld()
	// Several facts at the same instant: the order among them is by key.
	same := world[20].At
	for _, i := range []int{3, 11, 30, 41} {
		world[i].At = same
		if world[i].Kind == pcl.KindIOV {
			world[i].Inserted = same
		}
	}
	rev := slices.Clone(world)
	slices.Reverse(rev)
	_, err := s.AppendObservations(ctx, rev)
	must(t, "append", err)
	got, err := s.Observations(ctx, store.ObservationQuery{})
	must(t, "query", err)
	if want := sortedByAtKey(world); !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("observations not ordered by at, then key")
	}
}

func testAppendConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	pool := manyObservations(600, 7)
	const writers, span, batch = 8, 150, 25
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		added = map[string]int{}
		errs  []error
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Overlapping windows: every observation is offered by two or three writers.
			lo := w * (len(pool) - span) / (writers - 1)
			for b := lo; b < lo+span; b += batch {
				got, err := s.AppendObservations(ctx, pool[b:b+batch])
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, k := range keys(got) {
					added[k]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("concurrent append: %v", err)
	}
	for k, n := range added {
		if n != 1 {
			t.Errorf("observation %s reported new %d times", k, n)
		}
	}
	stored, err := s.Observations(ctx, store.ObservationQuery{})
	must(t, "query", err)
	if len(stored) != len(pool) || len(added) != len(pool) {
		t.Fatalf("after concurrent appends: %d stored, %d reported new, want %d", len(stored), len(added), len(pool))
	}
}

// testSequenceNumbers: every fact gets a sequence number (Observation.Seq) when it is appended: positive,
// larger for each fact appended later (within a batch, in input order), returned by the append and the
// same on every read, whatever the query. Decisions cite them as their evidence.
func testSequenceNumbers(t *testing.T, s store.Store) {
	ctx := context.Background()
	world := fixtureWorld()
	half := len(world) / 2
	var appended []pcl.Observation
	for _, batch := range [][]pcl.Observation{world[:half], world[half:]} {
		added, err := s.AppendObservations(ctx, batch)
		must(t, "append", err)
		appended = append(appended, added...)
	}
	if len(appended) != len(world) {
		t.Fatalf("appended %d of %d", len(appended), len(world))
	}
	bySeq := map[string]int64{}
	for i, o := range appended {
		if o.Seq <= 0 {
			t.Fatalf("appended %s %s of run %d has Seq %d", o.Source, o.Kind, o.Run, o.Seq)
		}
		if i > 0 && o.Seq <= appended[i-1].Seq {
			t.Fatalf("Seq %d after %d: not increasing in append order", o.Seq, appended[i-1].Seq)
		}
		bySeq[o.Key()] = o.Seq
	}
	// Appending the same facts again adds nothing and changes no Seq.
	again, err := s.AppendObservations(ctx, world)
	must(t, "append again", err)
	if len(again) != 0 {
		t.Fatalf("append of known facts returned %d", len(again))
	}
	later, err := s.AppendObservations(ctx, []pcl.Observation{dqmObs(fixtureRuns()[0], "SiPixelAli", pcl.QualityBad, runStart(0).Add(5*time.Hour))})
	must(t, "append one more", err)
	if len(later) != 1 || later[0].Seq <= appended[len(appended)-1].Seq {
		t.Fatalf("a later fact has Seq %v, not above %d", later, appended[len(appended)-1].Seq)
	}
	bySeq[later[0].Key()] = later[0].Seq
	for _, q := range []store.ObservationQuery{{}, {Runs: []uint32{fixtureRuns()[0]}}, {Kinds: []pcl.Kind{pcl.KindIOV}}} {
		for pass := range 2 {
			got, err := s.Observations(ctx, q)
			must(t, "query", err)
			if len(got) == 0 {
				t.Fatalf("query %+v returned nothing", q)
			}
			for _, o := range got {
				if want, ok := bySeq[o.Key()]; !ok || o.Seq != want {
					t.Fatalf("read %d of %+v: %s %s of run %d has Seq %d, appended with %d", pass+1, q, o.Source, o.Kind, o.Run, o.Seq, want)
				}
			}
		}
	}
}
