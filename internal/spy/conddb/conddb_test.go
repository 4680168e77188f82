package conddb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/fixtures"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/reconcile"
)

const fixtureTag = "AlCaRecoHLTpaths8e29_1e31_v11_hlt"

// fixtureCopy copies the CMSSW-written CondDB fixture into a temp dir, so tests may append to it.
func fixtureCopy(t *testing.T) string { return fixtureCopyB(t) }

func fixtureCopyB(t testing.TB) string {
	t.Helper()
	data := fixtures.Read(t, "conddb", fixtureTag+"_All.db")
	p := filepath.Join(t.TempDir(), "conddb.db")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSpy(t *testing.T, cfg Config) *Spy {
	t.Helper()
	cfg.Clock = clock.NewFake(now)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFixtureThenIncremental(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := fixtureCopy(t)
	s := newSpy(t, Config{DSN: "sqlite:" + path, Tags: []string{fixtureTag}, PageSize: 10})

	res, err := s.Poll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Observations) != 107 {
		t.Fatalf("first poll: %d observations, want the fixture's 107 IOVs", len(res.Observations))
	}
	sinces := map[uint64]bool{}
	withPrevious := 0
	for i, o := range res.Observations {
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		// The CMSSW-written fixture's one tag is of synchronization "any" (TAG.SYNCHRONIZATION).
		if o.Kind != pcl.KindIOV || o.Tag != fixtureTag || o.TimeType != pcl.TimeRun || !o.At.Equal(o.Inserted) ||
			o.Run != uint32(o.Since) || !o.Seen.Equal(now) || o.Synchronization != "any" {
			t.Fatalf("observation %d = %+v", i, o)
		}
		sinces[o.Since] = true
		if o.Previous != "" {
			withPrevious++
		}
	}
	if len(sinces) != 107 || !sinces[1] || !sinces[327051] {
		t.Errorf("distinct sinces %d (1: %v, 327051: %v)", len(sinces), sinces[1], sinces[327051])
	}
	// Every since but the first has one below it, inserted before it (the fixture was imported in order).
	if withPrevious != 106 {
		t.Errorf("%d observations carry a previous payload, want 106", withPrevious)
	}

	again, err := s.Poll(ctx, res.Cursor)
	if err != nil || len(again.Observations) != 0 {
		t.Fatalf("second poll: %d observations, %v; want none", len(again.Observations), err)
	}

	w, err := conddbv2.OpenWriter(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	last := res.Observations[len(res.Observations)-1]
	ins := time.Date(2026, 2, 28, 9, 30, 0, 123456000, time.UTC)
	if err := w.AppendIOV(ctx, conddbv2.IOV{Tag: fixtureTag, Since: 400000, Payload: last.Payload, Inserted: ins}); err != nil {
		t.Fatal(err)
	}
	third, err := s.Poll(ctx, again.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(third.Observations) != 1 {
		t.Fatalf("after one append: %d observations, want 1", len(third.Observations))
	}
	o := third.Observations[0]
	if o.Since != 400000 || o.Run != 400000 || !o.Inserted.Equal(ins) || o.Previous != last.Payload {
		t.Errorf("appended IOV seen as %+v", o)
	}

	// A row of the same timestamp and one that lags (a slow commit) within the look-back are both caught.
	for _, r := range []conddbv2.IOV{
		{Tag: fixtureTag, Since: 400001, Payload: last.Payload, Inserted: ins},
		{Tag: fixtureTag, Since: 399999, Payload: last.Payload, Inserted: ins.Add(-time.Minute)},
	} {
		if err := w.AppendIOV(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	fourth, err := s.Poll(ctx, third.Cursor)
	if err != nil || len(fourth.Observations) != 2 {
		t.Fatalf("tie and late row: %d observations, %v; want 2", len(fourth.Observations), err)
	}
	if fifth, err := s.Poll(ctx, fourth.Cursor); err != nil || len(fifth.Observations) != 0 {
		t.Errorf("repeat: %d observations, %v", len(fifth.Observations), err)
	}
}

// TestTiesAcrossPages puts more rows on one timestamp than a page holds.
func TestTiesAcrossPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	w, err := conddbv2.Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.InsertTag(ctx, conddbv2.TagInfo{Name: "L", TimeType: pcl.TimeLumi, ObjectType: "X", Synchronization: "pcl"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 7 {
		if err := w.AppendIOV(ctx, conddbv2.IOV{Tag: "L", Since: pcl.PackLumi(390000, uint32(i+1)), Payload: strings.Repeat("a", 40), Inserted: at}); err != nil {
			t.Fatal(err)
		}
	}
	s := newSpy(t, Config{DSN: "sqlite:" + path, Tags: []string{"L"}, PageSize: 3, MaxPerPoll: 4, Lookback: -1})
	cursor, seen := "", map[uint64]bool{}
	for range 5 {
		res, err := s.Poll(ctx, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Observations {
			if seen[o.Since] {
				t.Fatalf("since %d repeated", o.Since)
			}
			seen[o.Since] = true
			if o.Run != 390000 {
				t.Errorf("lumi since %d gave run %d", o.Since, o.Run)
			}
		}
		cursor = res.Cursor
	}
	if len(seen) != 7 {
		t.Errorf("saw %d of 7 rows sharing one timestamp", len(seen))
	}
}

type hints struct {
	tags []string
	err  error
}

// OpenRuns says run 1 is open, at or below every IOV of the fixture: every row is read.
func (h *hints) OpenRuns(context.Context) ([]pcl.OpenRun, error) {
	return []pcl.OpenRun{{Run: 1}}, nil
}
func (h *hints) WatchedTags(context.Context) ([]string, error) { return h.tags, h.err }

func TestHintsAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := fixtureCopy(t)

	s := newSpy(t, Config{DSN: "sqlite:" + path, Hints: &hints{tags: []string{"SiStripApvGain_PCL_v0_prompt", fixtureTag, fixtureTag}}})
	res, err := s.Poll(ctx, "")
	if err != nil || len(res.Observations) != 107 {
		t.Fatalf("hinted tags: %d observations, %v; want 107 (missing tag skipped, duplicate once)", len(res.Observations), err)
	}
	// A damaged cursor restarts from scratch rather than wedging the spy.
	if res, err := s.Poll(ctx, "{not json"); err != nil || len(res.Observations) != 107 {
		t.Errorf("damaged cursor: %d, %v", len(res.Observations), err)
	}

	s = newSpy(t, Config{DSN: "sqlite:" + path, Tags: []string{"NoSuchTag"}})
	if _, err := s.Poll(ctx, ""); err == nil || !strings.Contains(err.Error(), "NoSuchTag") || httpx.Retryable(err) {
		t.Errorf("explicit missing tag: %v (retryable %v)", err, httpx.Retryable(err))
	}
	s = newSpy(t, Config{DSN: "sqlite:" + path, Hints: &hints{err: errors.New("store down")}})
	if _, err := s.Poll(ctx, ""); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Errorf("hints error: %v", err)
	}
	s = newSpy(t, Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "gone.db"), Tags: []string{fixtureTag}})
	if _, err := s.Poll(ctx, ""); err == nil || !strings.Contains(err.Error(), "gone.db") || !httpx.Retryable(err) {
		t.Errorf("missing file: %v (retryable %v)", err, httpx.Retryable(err))
	}
	for _, cfg := range []Config{{}, {DSN: "sqlite:x"}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestCursorIsJSON(t *testing.T) {
	t.Parallel()
	path := fixtureCopy(t)
	s := newSpy(t, Config{DSN: "sqlite:" + path, Tags: []string{fixtureTag}})
	res, err := s.Poll(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var c cursor
	if err := json.Unmarshal([]byte(res.Cursor), &c); err != nil || c.Tags[fixtureTag] == nil {
		t.Fatalf("cursor %q: %v", res.Cursor, err)
	}
	want := time.Date(2019, 10, 24, 13, 52, 15, 214815000, time.UTC)
	if !c.Tags[fixtureTag].Latest.Equal(want) {
		t.Errorf("cursor latest %v, want the newest INSERTION_TIME %v", c.Tags[fixtureTag].Latest, want)
	}
}

// BenchmarkPollFixture measures a first poll of the fixture's 107 IOVs (with their previous payloads).
func BenchmarkPollFixture(b *testing.B) {
	path := fixtureCopyB(b)
	s, err := New(Config{DSN: "sqlite:" + path, Tags: []string{fixtureTag}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		res, err := s.Poll(context.Background(), "")
		if err != nil || len(res.Observations) != 107 {
			b.Fatalf("%d, %v", len(res.Observations), err)
		}
	}
}

// TestFixtureThroughTheReconcile reads the CMSSW-written fixture's IOVs and asks the reconcile whether a
// run's payload is in the DB. The fixture's one tag is of synchronization "any": it does not gate
// PromptReco, so a payload counts wherever it landed; once the catalogue says the tag gates, only the IOV
// in effect at the run counts.
func TestFixtureThroughTheReconcile(t *testing.T) {
	t.Parallel()
	s := newSpy(t, Config{DSN: "sqlite:" + fixtureCopy(t), Tags: []string{fixtureTag}})
	res, err := s.Poll(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	// A payload found at exactly one since, above the first one.
	sinces := map[string][]uint64{}
	for _, o := range res.Observations {
		sinces[o.Payload] = append(sinces[o.Payload], o.Since)
	}
	var iov pcl.Observation
	for _, o := range res.Observations {
		if len(sinces[o.Payload]) == 1 && o.Since > 2 && o.Inserted.After(iov.Inserted) {
			iov = o
		}
	}
	if iov.Payload == "" {
		t.Fatal("no payload of the fixture is at one since only")
	}
	catalogue := func(gates map[string]bool) *pcl.Catalogue {
		c, err := pcl.NewCatalogue([]pcl.Workflow{{Name: "HLTBits", Producer: "PromptCalibProdHLTBits", Streams: []string{"Express"},
			Inputs: []pcl.Input{{Tag: "AlCaRecoHLTpaths_pcl", TimeType: pcl.TimeRun, Destinations: []string{fixtureTag}, Gates: gates}}}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	stateOf := func(run uint32, cat *pcl.Catalogue) pcl.WorkflowStatus {
		t.Helper()
		stop := iov.Inserted.Add(-2 * time.Hour)
		obs := append([]pcl.Observation{
			{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: run, At: stop,
				RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions19", BField: 3.8, LastUpdate: stop}},
			{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: run, At: stop, Stream: "Express", Producers: []string{"PromptCalibProdHLTBits"}},
			{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: run, At: stop.Add(time.Hour), InputTag: "AlCaRecoHLTpaths_pcl",
				File: fmt.Sprintf("Run%d@AlCaRecoHLTpaths_pcl@0b1d.db", run), Payloads: []pcl.IOV{{Since: uint64(run), Payload: iov.Payload}}},
		}, res.Observations...)
		rs := reconcile.Reconcile(reconcile.Input{Run: run, Observations: obs, Catalogue: cat, Policy: pcl.DefaultPolicy(),
			Now: iov.Inserted.Add(time.Hour)})
		ws, _ := rs.Workflow("HLTBits")
		return *ws
	}
	own, earlier := uint32(iov.Since), uint32(iov.Since-1)
	if ws := stateOf(own, catalogue(nil)); ws.State != pcl.StateInDB {
		t.Errorf("run %d, its payload at its own since: %s (%s)", own, ws.State, ws.Reason)
	}
	if ws := stateOf(earlier, catalogue(nil)); ws.State != pcl.StateInDB || !strings.Contains(ws.Reason, "none gates") {
		t.Errorf("run %d, its payload at the next run's since of a tag of synchronization any: %s (%s)", earlier, ws.State, ws.Reason)
	}
	gating := catalogue(map[string]bool{fixtureTag: true})
	if ws := stateOf(own, gating); ws.State != pcl.StateInDB {
		t.Errorf("run %d in a gating tag, its payload in effect: %s (%s)", own, ws.State, ws.Reason)
	}
	if ws := stateOf(earlier, gating); ws.State == pcl.StateInDB || !strings.Contains(ws.Reason, fmt.Sprintf("landed at since %d (run %d)", iov.Since, iov.Since)) {
		t.Errorf("run %d in a gating tag, its payload only at the next run's since: %s (%s)", earlier, ws.State, ws.Reason)
	}
}

// TestCountsSkipOnlyWhatWasRead: a poll skips a tag whose IOV count did not move only when it is given
// the cursor of the poll that read the tag to its end. Given an older cursor (the runner could not
// store that poll's observations), or after a poll the budget cut short, it reads again.
func TestCountsSkipOnlyWhatWasRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := fixtureCopy(t)
	s := newSpy(t, Config{DSN: "sqlite:" + path, Tags: []string{fixtureTag}, PageSize: 10, MaxPerPoll: 50})
	first, err := s.Poll(ctx, "")
	if err != nil || len(first.Observations) != 50 {
		t.Fatalf("first poll: %d observations, %v; want the budget's 50", len(first.Observations), err)
	}
	// Cut short: the count did not move, yet the rest must come.
	second, err := s.Poll(ctx, first.Cursor)
	if err != nil || len(second.Observations) != 50 {
		t.Fatalf("second poll: %d observations, %v; want 50 more", len(second.Observations), err)
	}
	third, err := s.Poll(ctx, second.Cursor)
	if err != nil || len(third.Observations) != 7 {
		t.Fatalf("third poll: %d observations, %v; want the last 7", len(third.Observations), err)
	}
	if again, err := s.Poll(ctx, third.Cursor); err != nil || len(again.Observations) != 0 {
		t.Fatalf("nothing new: %d observations, %v", len(again.Observations), err)
	}
	// The observations of the third poll were never stored: its predecessor's cursor comes back, and
	// the same 7 rows with it, although the count did not move.
	if retry, err := s.Poll(ctx, second.Cursor); err != nil || len(retry.Observations) != 7 {
		t.Fatalf("given the older cursor: %d observations, %v; want the 7 again", len(retry.Observations), err)
	}
}

// A poll of an SQLite condition DB that no writer committed to since the previous poll counted its
// IOVs reads nothing, not even the counts; a commit by another connection, another cursor, a newly
// watched tag and the periodic full read each make it read again.
func TestUnchangedFileIsNotRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := fixtureCopy(t)
	s := newSpy(t, Config{DSN: "sqlite:" + path, Tags: []string{fixtureTag}})
	counted := func() int { s.mu.Lock(); defer s.mu.Unlock(); return s.counted }
	first, err := s.Poll(ctx, "")
	if err != nil || len(first.Observations) != 107 {
		t.Fatalf("first poll: %d observations, %v", len(first.Observations), err)
	}
	for range 5 {
		if res, err := s.Poll(ctx, first.Cursor); err != nil || len(res.Observations) != 0 || res.Cursor != first.Cursor {
			t.Fatalf("unchanged file: %d observations, %v", len(res.Observations), err)
		}
	}
	if got := counted(); got != 1 {
		t.Fatalf("the IOVs were counted %d times over six polls of an unchanged file, want once", got)
	}
	// Another cursor (the last poll's observations were not stored): read again.
	if res, err := s.Poll(ctx, ""); err != nil || len(res.Observations) != 107 || counted() != 2 {
		t.Fatalf("from an empty cursor: %d observations, %v, counted %d", len(res.Observations), err, counted())
	}
	w, err := conddbv2.OpenWriter(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	last := first.Observations[len(first.Observations)-1]
	ins := time.Date(2026, 2, 28, 9, 30, 0, 0, time.UTC)
	if err := w.AppendIOV(ctx, conddbv2.IOV{Tag: fixtureTag, Since: 400000, Payload: last.Payload, Inserted: ins}); err != nil {
		t.Fatal(err)
	}
	second, err := s.Poll(ctx, first.Cursor)
	if err != nil || len(second.Observations) != 1 || second.Observations[0].Since != 400000 {
		t.Fatalf("after a commit by another connection: %+v, %v; want the appended IOV", second.Observations, err)
	}
	before := counted()
	if res, err := s.Poll(ctx, second.Cursor); err != nil || len(res.Observations) != 0 || counted() != before {
		t.Fatalf("unchanged again: %d observations, %v, counted %d (was %d)", len(res.Observations), err, counted(), before)
	}
	// The periodic full read counts whatever the version says.
	s.mu.Lock()
	s.polls = fullEvery * 3
	s.mu.Unlock()
	if _, err := s.Poll(ctx, second.Cursor); err != nil || counted() != before+1 {
		t.Fatalf("full poll: %v, counted %d, want %d", err, counted(), before+1)
	}
}

// A newly watched tag is counted and read although the file did not change.
func TestUnchangedFileNewTagIsRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := fixtureCopy(t)
	tags := &hints{tags: []string{"NoSuchTag"}}
	s := newSpy(t, Config{DSN: "sqlite:" + path, Hints: tags})
	first, err := s.Poll(ctx, "")
	if err != nil || len(first.Observations) != 0 {
		t.Fatalf("first poll: %d observations, %v", len(first.Observations), err)
	}
	tags.tags = []string{"NoSuchTag", fixtureTag}
	res, err := s.Poll(ctx, first.Cursor)
	if err != nil || len(res.Observations) != 107 {
		t.Fatalf("a tag watched from now on: %d observations, %v; want its 107 IOVs", len(res.Observations), err)
	}
}

type openHints struct {
	tags []string
	runs []pcl.OpenRun
}

func (h *openHints) OpenRuns(context.Context) ([]pcl.OpenRun, error) { return h.runs, nil }
func (h *openHints) WatchedTags(context.Context) ([]string, error)   { return h.tags, nil }

// appendIOVs appends rows of the fixture's tag at these sinces, all of one payload and insertion time,
// as a writer committing to the file would.
func appendIOVs(t *testing.T, path, payload string, sinces ...uint64) {
	t.Helper()
	w, err := conddbv2.OpenWriter(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ins := time.Date(2026, 2, 28, 9, 30, 0, 0, time.UTC)
	for _, since := range sinces {
		if err := w.AppendIOV(t.Context(), conddbv2.IOV{Tag: fixtureTag, Since: since, Payload: payload, Inserted: ins}); err != nil {
			t.Fatal(err)
		}
	}
}

// sincesOf is the observations' sinces, sorted.
func sincesOf(obs []pcl.Observation) []uint64 {
	var out []uint64
	for _, o := range obs {
		out = append(out, o.Since)
	}
	slices.Sort(out)
	return out
}

// With open runs, a run-based tag is read from the IOV in effect at the lowest open run up: that IOV
// and every row above it are observed, a row appended below it (in effect for no open run) is not,
// and the floor follows the open runs as they move.
func TestReadsFromTheIOVInEffectAtTheLowestOpenRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := fixtureCopy(t)
	h := &openHints{tags: []string{fixtureTag}, runs: []pcl.OpenRun{{Run: 325500, Stopped: true}, {Run: 327100}}}
	s := newSpy(t, Config{DSN: "sqlite:" + path, Hints: h})
	first, err := s.Poll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	sinces := sincesOf(first.Observations)
	// The fixture's sinces end ... 325296, 325948, 327051: 325296 is in effect at 325500.
	if want := []uint64{325296, 325948, 327051}; !slices.Equal(sinces, want) {
		t.Fatalf("observed sinces %v, want %v (the IOV in effect at the lowest open run and those above)", sinces, want)
	}
	appendIOVs(t, path, first.Observations[0].Payload, 325000, 327200) // below the floor, above it
	second, err := s.Poll(ctx, first.Cursor)
	if err != nil || len(second.Observations) != 1 || second.Observations[0].Since != 327200 {
		t.Fatalf("after appends below and above the floor: %+v, %v; want only since 327200", second.Observations, err)
	}
	// The lowest open run goes down (a run opened again): the floor follows, and the tag is read again
	// from it (what was sent already comes again, and the store keeps it once): the IOV in effect at the
	// new lowest run, 323524, and the one appended below the old floor with it, nothing below.
	h.runs = []pcl.OpenRun{{Run: 324000, Stopped: true}}
	third, err := s.Poll(ctx, second.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]bool{}
	for _, o := range third.Observations {
		got[o.Since] = true
	}
	if !got[325000] || !got[323524] || !got[327200] {
		t.Fatalf("after the floor went down: sinces %v; want the rows from 323524 up, 325000 among them", got)
	}
	for since := range got {
		if since < 323524 {
			t.Errorf("since %d, below the IOV in effect at the lowest open run, was read", since)
		}
	}
}

// With hints and no run open (every run released, between fills), a tag is read from its newest IOV
// up, not over its history: a row appended above is seen, and a run that opens below the newest IOV
// lowers the floor, so the rows in effect for it are read then.
func TestReadsFromTheNewestIOVWithNoRunOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := fixtureCopy(t)
	h := &openHints{tags: []string{fixtureTag}}
	s := newSpy(t, Config{DSN: "sqlite:" + path, Hints: h})
	first, err := s.Poll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Observations) != 1 || first.Observations[0].Since != 327051 {
		t.Fatalf("no run open: %+v; want only the newest IOV, since 327051", first.Observations)
	}
	appendIOVs(t, path, first.Observations[0].Payload, 327300)
	second, err := s.Poll(ctx, first.Cursor)
	if err != nil || len(second.Observations) != 1 || second.Observations[0].Since != 327300 {
		t.Fatalf("after an append above the newest IOV: %+v, %v; want only since 327300", second.Observations, err)
	}
	// A run below the newest IOVs opens (a late run OMS reports now): the floor goes down to the IOV in
	// effect at it, and the rows from there up are read.
	h.runs = []pcl.OpenRun{{Run: 325500, Stopped: true}}
	third, err := s.Poll(ctx, second.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if sinces, want := sincesOf(third.Observations), []uint64{325296, 325948, 327051, 327300}; !slices.Equal(sinces, want) {
		t.Fatalf("after a run opened below the newest IOV: sinces %v, want %v", sinces, want)
	}
}
