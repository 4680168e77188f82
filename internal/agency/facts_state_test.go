package agency

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// rememberedIsStored fails unless the agency's remembered state of the run, if any, is the stored one.
func (h *harness) rememberedIsStored(when string) {
	h.t.Helper()
	rs, _, ok := h.ag.facts.state(run)
	if !ok {
		return
	}
	a, _ := json.Marshal(rs)
	b, _ := json.Marshal(h.state())
	if string(a) != string(b) {
		h.t.Fatalf("%s: remembered state differs from the stored one:\n got %s\nwant %s", when, a, b)
	}
}

// TestRememberedStateAfterSameDecision: a released run's reconcile whose decision tells Tier-0 nothing
// new (sameDecision) but whose reason or blocking list moved stores its state with the run's latest
// stored decision (PutRunState keeps the versioned decision); the agency must remember that, not its
// unversioned decision, or the alerts (OpenRunStates) and the next comparisons read a state the store
// never held.
func TestRememberedStateAfterSameDecision(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.clk.Advance(time.Minute)
	h.ingest(pcl.SourceTier0, release(h.clk.Now()))
	if d := h.state().Decision; d.State != pcl.ReadinessReleased || len(d.Blocking) == 0 {
		t.Fatalf("released with nothing blocking, or not released: %+v", d)
	}
	h.rememberedIsStored("after the release")
	h.clk.Advance(time.Minute)
	h.ingest(pcl.SourceHarvest, harvestFile())
	h.rememberedIsStored("after a harvest file of the released run")
	h.clk.Advance(time.Minute)
	h.ingest(pcl.SourceCondDB, iovAt("SiStripApvGain_PCL_v0_hlt", run, 2*time.Hour), iovAt("SiStripApvGain_PCL_v0_prompt", run, 2*time.Hour))
	h.rememberedIsStored("after its IOV")
	if w := h.gains(); w.State != pcl.StateInDB {
		t.Fatalf("SiStripGains %s after its IOVs, want in-db: the scenario did not happen", w.State)
	}
	states, err := h.ag.OpenRunStates(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range states {
		a, _ := json.Marshal(rs)
		b, _ := json.Marshal(h.state())
		if rs.Run == run && string(a) != string(b) {
			t.Fatalf("OpenRunStates (the alerts) is not the stored state:\n got %s\nwant %s", a, b)
		}
	}
}

// lostAckStore stores a batch and then reports a failure, once armed: a commit whose acknowledgement
// was lost (the connection dropped, the context ended as the commit returned).
type lostAckStore struct {
	store.Store
	armed bool
}

func (s *lostAckStore) AppendObservations(ctx context.Context, obs []pcl.Observation) ([]pcl.Observation, error) {
	added, err := s.Store.AppendObservations(ctx, obs)
	if err == nil && s.armed {
		s.armed = false
		return nil, errors.New("connection reset while committing")
	}
	return added, err
}

// TestFactsAfterAFailedIngest: a batch whose write failed may be stored all the same. The spy sends it
// again and the store then adds nothing (it holds every fact), so only forgetting the batch's runs when
// the write failed keeps the agency's facts what the store holds. Otherwise the harvest file stays
// unknown to the agency, and the harvest view that follows makes its absence count: no-payload for a
// run whose file is stored, which a restart turns into harvested.
func TestFactsAfterAFailedIngest(t *testing.T) {
	t.Parallel()
	ls := &lostAckStore{}
	h := newHarnessWith(t, func(h *harness) {
		h.store = func(st store.Store) store.Store { ls.Store = st; return ls }
	})
	done := h.awaitingScan()
	file := harvestFile()
	file.Seen = done.Add(30 * time.Second)
	ls.armed = true
	if err := h.ag.Ingest(h.ctx, pcl.SourceHarvest, []pcl.Observation{file}); err == nil {
		t.Fatal("the failed write was not reported")
	}
	// The runner retries the poll: the same batch, stored this time (again), then the poll's view.
	h.ingest(pcl.SourceHarvest, file)
	h.setFresh(done.Add(time.Minute))
	h.clk.Advance(time.Minute)
	h.ag.Resync()
	h.pass()
	got, err := h.ag.facts.gather(h.ctx, h.st, run)
	if err != nil {
		t.Fatal(err)
	}
	want, err := gatherStored(h.ctx, h.st, run)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("remembered facts differ from the store's: got %v, want %v", seqsOf(got), seqsOf(want))
	}
	if w := h.gains(); w.State != pcl.StateHarvested {
		t.Fatalf("%s while the harvest file is stored (%s), want harvested", w.State, w.Reason)
	}
}

func (s *lostAckStore) AppendOverride(ctx context.Context, o pcl.Observation, e store.AuditEntry) (pcl.Observation, error) {
	stored, err := s.Store.AppendOverride(ctx, o, e)
	if err == nil && s.armed {
		s.armed = false
		return pcl.Observation{}, errors.New("connection reset while committing")
	}
	return stored, err
}

// TestFactsAfterAFailedOverride: an override whose write failed may be stored all the same; the next
// reconcile must see it, as a restart would.
func TestFactsAfterAFailedOverride(t *testing.T) {
	t.Parallel()
	ls := &lostAckStore{}
	h := newHarnessWith(t, func(h *harness) {
		h.store = func(st store.Store) store.Store { ls.Store = st; return ls }
	})
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	ls.armed = true
	if _, err := h.ag.Override(h.ctx, run, pcl.OverrideHold, "", "shifter", "pixel alignment looks odd"); err == nil {
		t.Fatal("the failed write was not reported")
	}
	h.ag.Resync()
	h.pass()
	if d := h.state().Decision; d.State != pcl.ReadinessHeld {
		t.Fatalf("run %s with its hold stored, want held", d.State)
	}
}

// TestResyncSeesAnOverrideRecordedElsewhere: an override recorded on another replica reaches the
// leader through its watch of recent overrides, and when that misses it (stamped by a clock further
// behind than the watch looks back) the resync is the safety net (internal/app watchOverrides): the
// leader's resync must take it up from the store, as a restart would, although it remembers the run.
func TestResyncSeesAnOverrideRecordedElsewhere(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, func(h *harness) { h.replicated = true })
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.ag.Resync()
	h.pass()
	if runs, _ := h.ag.facts.size(); runs != 1 {
		t.Fatalf("%d runs remembered, want the open one", runs)
	}
	// What a follower's Override stores (replicaOverrider): the override and its audit entry.
	at := h.clk.Now().Add(-time.Hour)
	o := pcl.Observation{Source: pcl.SourceOperator, Kind: pcl.KindOverride, Run: run, At: at, Seen: at,
		Action: pcl.OverrideHold, Actor: "shifter", Reason: "pixel alignment looks odd"}
	if _, err := h.st.AppendOverride(h.ctx, o, store.AuditEntry{At: at, Run: run, Actor: "shifter", Action: "hold", Detail: o.Reason}); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(time.Minute)
	h.ag.Resync()
	h.pass()
	if d := h.state().Decision; d.State != pcl.ReadinessHeld {
		t.Fatalf("after a resync: run %s with a hold stored, want held", d.State)
	}
}

// TestFactsAfterACompaction: CondDB payloads are content-addressed, so a later run's harvest can carry
// the hash an earlier run's IOV holds. Compacting the earlier run removes that IOV from the store; the
// later, open run's remembered IOVs of the hash must lose it too (retention forgets the compacted run,
// internal/app retainPass), or its facts differ from what a restart reads.
func TestFactsAfterACompaction(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.ingest(pcl.SourceCondDB, iovAt("SiStripApvGain_PCL_v0_hlt", run, 2*time.Hour))
	h.clk.Advance(time.Minute)
	h.ingest(pcl.SourceTier0, release(h.clk.Now()))
	later := uint32(run + 1)
	o := stoppedRun()
	o.Run = later
	info := *o.RunInfo
	info.Start, info.LastUpdate = info.Start.Add(48*time.Hour), info.LastUpdate.Add(48*time.Hour)
	stop := info.Stop.Add(48 * time.Hour)
	info.Stop = &stop
	o.RunInfo = &info
	c := config()
	c.Run = later
	f := harvestFile()
	f.Run, f.File = later, "Run392681@SiStripApvGain_pcl@c3d4.db"
	f.Payloads = []pcl.IOV{{Since: uint64(later), Payload: hash}} // the same payload, by its hash
	h.clk.Advance(48 * time.Hour)
	h.ingest(pcl.SourceOMS, o)
	h.ingest(pcl.SourceTier0, c)
	h.ingest(pcl.SourceHarvest, f)
	h.ag.Resync()
	h.pass()
	got, err := h.st.CompactReleased(h.ctx, store.CompactQuery{ReleasedBefore: h.clk.Now().Add(-time.Hour), Now: h.clk.Now()})
	if err != nil || len(got) != 1 || got[0] != run {
		t.Fatalf("compacted %v, %v; want run %d", got, err, run)
	}
	h.ag.Forget(run) // what retention does for a compacted run
	remembered, err := h.ag.facts.gather(h.ctx, h.st, later)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := gatherStored(h.ctx, h.st, later)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(remembered, stored) {
		t.Fatalf("run %d after run %d was compacted: remembered facts %v, the store's %v", later, run, seqsOf(remembered), seqsOf(stored))
	}
}
