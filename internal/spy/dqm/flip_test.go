package dqm

import (
	"context"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/reconcile"
)

// archiveWith is a classic archive reply with one monitor element whose quality test gave status.
func archiveWith(status string) []byte {
	return []byte(`{"contents": [{"obj": "chi2Fit", "qresults": [{"status": ` + status + `, "name": "ChiSquareNdf"}]}]}`)
}

// TestVerdictThatFlipsBack follows a DQM verdict good → bad → good from the GUI's replies, through the
// spy's cursor and a store that keeps each fact once (by key), to the reconcile: the run's workflow ends
// good, and each change is reported once, stamped with the poll that saw it.
func TestVerdictThatFlipsBack(t *testing.T) {
	t.Parallel()
	archive := "/dqm/offline/data/json/archive/392700" + gainsV2 + "/AlCaReco/SiStripGains"
	g, base := start(t, map[string][]byte{"/dqm/offline/data/json/samples": testdata(t, "samples_classic.json")})
	clk := clock.NewFake(t0)
	s, err := New(Config{BaseURL: base, Hints: openRun(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[16]byte]pcl.Observation{} // what a store keeps: one row per key
	var cursor string
	poll := func(status string) []pcl.Observation {
		t.Helper()
		g.mu.Lock()
		g.routes[archive] = archiveWith(status)
		g.mu.Unlock()
		res, err := s.Poll(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		cursor = res.Cursor
		for _, o := range res.Observations {
			if _, dup := stored[o.KeySum()]; !dup {
				stored[o.KeySum()] = o
			}
		}
		clk.Advance(10 * time.Minute)
		return res.Observations
	}
	quality := func() pcl.Quality {
		t.Helper()
		stop := t0.Add(-time.Hour)
		obs := []pcl.Observation{{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392700, At: stop,
			RunInfo: &pcl.RunInfo{Start: stop.Add(-4 * time.Hour), Stop: &stop, Class: "Collisions25", BField: 3.8, LastUpdate: stop}}}
		for _, o := range stored {
			obs = append(obs, o)
		}
		rs := reconcile.Reconcile(reconcile.Input{Run: 392700, Observations: obs, Catalogue: pcl.DefaultCatalogue(),
			Policy: pcl.DefaultPolicy(), Now: clk.Now()})
		ws, _ := rs.Workflow("SiStripGains")
		return ws.Quality
	}
	steps := []struct {
		status   string
		reported bool // a change the spy must report
		want     pcl.Quality
	}{
		{"100", true, pcl.QualityGood},
		{"300", true, pcl.QualityBad},
		{"300", false, pcl.QualityBad},
		{"100", true, pcl.QualityGood},
		{"100", false, pcl.QualityGood},
	}
	for i, st := range steps {
		at := clk.Now()
		var gains []pcl.Observation
		for _, o := range poll(st.status) {
			if o.Workflow == "SiStripGains" {
				gains = append(gains, o)
			}
		}
		if st.reported != (len(gains) == 1) || len(gains) > 1 {
			t.Fatalf("poll %d (status %s): reported %+v, want a report: %v", i+1, st.status, gains, st.reported)
		}
		if st.reported && !gains[0].At.Equal(at) {
			t.Errorf("poll %d: verdict stamped %s, want the poll's time %s", i+1, gains[0].At, at)
		}
		if got := quality(); got != st.want {
			t.Fatalf("after poll %d (status %s): SiStripGains is %s, want %s", i+1, st.status, got, st.want)
		}
	}
	// A lost cursor reports the current verdict again, later: a new fact that changes nothing.
	cursor = ""
	if again := poll("100"); len(again) == 0 {
		t.Error("with no cursor the current verdicts were not reported")
	}
	if got := quality(); got != pcl.QualityGood {
		t.Errorf("after a lost cursor: %s, want good", got)
	}
}

// TestCursorKeepsOpenRunsOnly: the cursor forgets runs the agency no longer follows, so it stays as
// small as the set of open runs, and a damaged cursor only repeats verdicts.
func TestCursorKeepsOpenRunsOnly(t *testing.T) {
	t.Parallel()
	s, _ := New(Config{BaseURL: "http://x"})
	c := s.parseCursor(`{"runs": {"1": {"A": {"dataset": "/a/b/c", "quality": "good"}}, "2": {"A": {"dataset": "/a/b/c", "quality": "bad"}}}}`)
	c.keep(map[uint32]bool{2: true})
	if _, ok := c.Runs[1]; ok || len(c.Runs) != 1 {
		t.Errorf("cursor %+v, want run 2 only", c.Runs)
	}
	if c := s.parseCursor("{garbage"); len(c.Runs) != 0 {
		t.Errorf("damaged cursor read as %+v", c.Runs)
	}
	big := &cursor{Runs: map[uint32]map[string]verdict{}}
	open := map[uint32]bool{}
	for run := uint32(1); run <= maxCursorRuns+5; run++ {
		big.Runs[run], open[run] = map[string]verdict{"A": {}}, true
	}
	big.keep(open)
	if _, ok := big.Runs[5]; len(big.Runs) != maxCursorRuns || ok {
		t.Errorf("bounded cursor holds %d runs (run 5: %v), want the newest %d", len(big.Runs), ok, maxCursorRuns)
	}
}
