package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestRestartChangesNoDecision: runs whose readiness rests on a conclusion from absence (no harvest
// file after the stream was done) keep it across restarts. Each restart opens a new App on the same
// store and reconciles every open run before any spy polled: no new decision, no outbox entry.
func TestRestartChangesNoDecision(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	harvestDir := filepath.Join(dir, "harvest")
	secret := filepath.Join(dir, "secret")
	for _, err := range []error{os.MkdirAll(harvestDir, 0o755), os.WriteFile(secret, []byte("s3cret"), 0o600)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(dir, "spy.db")
	cfg.Sources.Set(pcl.SourceHarvest, config.Source{Enabled: true, Dir: harvestDir, Interval: time.Minute, Timeout: 30 * time.Second, StaleAfter: 3})
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0", Type: "webhook", URL: "http://127.0.0.1:1/", SecretFile: secret}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC))
	ctx := t.Context()
	open := func() *App {
		t.Helper()
		a, err := New(ctx, Options{Config: cfg, Clock: clk, Stepped: true})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	runs := []uint32{392680, 392681, 392682}
	a := open()
	for i, r := range runs {
		start := clk.Now().Add(-4*time.Hour + time.Duration(i)*time.Minute)
		stop := start.Add(2 * time.Hour)
		done := stop.Add(30 * time.Minute)
		if err := a.Agency.Ingest(ctx, pcl.SourceOMS, []pcl.Observation{{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: r, At: stop, Seen: stop,
			RunInfo: &pcl.RunInfo{Start: start, Stop: &stop, Class: "Cosmics26", LastUpdate: stop}}}); err != nil {
			t.Fatal(err)
		}
		if err := a.Agency.Ingest(ctx, pcl.SourceTier0, []pcl.Observation{
			{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: r, At: start, Seen: start, Stream: "ExpressCosmics", Producers: []string{"PromptCalibProdSiStripLA"}},
			{Source: pcl.SourceTier0, Kind: pcl.KindStreamDone, Run: r, At: done, Seen: done, Stream: "ExpressCosmics", Done: true},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Step(ctx); err != nil { // the harvest area is scanned (empty) after the streams were done
		t.Fatal(err)
	}
	view := viewOf(a, pcl.SourceHarvest)
	decisions, outbox := count(t, a.Store, runs)
	for _, r := range runs {
		rs, err := a.Store.RunState(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := rs.Workflow("SiStripLA")
		if w == nil || w.State != pcl.StateNoPayload || !rs.Decision.Releasable {
			t.Fatalf("run %d before the restarts: %s, %+v; want ready on no-payload", r, rs.Decision.State, w)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 5 {
		clk.Advance(time.Minute)
		a = open()
		if got := viewOf(a, pcl.SourceHarvest); !got.Equal(view) {
			t.Fatalf("restart %d: the harvest view before any poll is %s, want %s as persisted", i+1, got, view)
		}
		a.Agency.Resync() // what the loop does first, before any spy has polled
		if err := a.Agency.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		if d, o := count(t, a.Store, runs); d != decisions || o != outbox {
			t.Fatalf("restart %d made %d new decisions and %d outbox entries", i+1, d-decisions, o-outbox)
		}
		if err := a.Step(ctx); err != nil { // and the first poll after it finds nothing new either
			t.Fatal(err)
		}
		if d, o := count(t, a.Store, runs); d != decisions || o != outbox {
			t.Fatalf("restart %d, first poll: %d new decisions and %d outbox entries", i+1, d-decisions, o-outbox)
		}
		if v := viewOf(a, pcl.SourceHarvest); !v.After(view) {
			t.Fatalf("restart %d: the poll did not move the view (%s)", i+1, v)
		} else {
			view = v
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// count is the number of decisions of the runs and of outbox entries.
func count(t *testing.T, st store.Store, runs []uint32) (decisions, outbox int) {
	t.Helper()
	for _, r := range runs {
		ds, err := st.Decisions(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		decisions += len(ds)
	}
	out, err := st.Outbox(context.Background(), "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	return decisions, len(out)
}

// viewOf is the view of a source as its spy reports it.
func viewOf(a *App, src pcl.Source) time.Time {
	for _, h := range a.SourceHealth() {
		if h.Name == src {
			return h.View
		}
	}
	return time.Time{}
}
