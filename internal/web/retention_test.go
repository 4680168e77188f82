package web

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestCompactedRunPage: once retention has compacted a released run, its page still renders the
// timeline and the milestones from the kept final state, and says that the raw observations were
// compacted; the API carries the summary.
func TestCompactedRunPage(t *testing.T) {
	t.Parallel()
	w, base := seeded(t, func(o *Options) { o.Operator = operatorLoopback })
	code, before, _ := fetch(t, base+"/runs/392660")
	if code != 200 {
		t.Fatalf("run page before compaction: %d", code)
	}
	if strings.Contains(before, `id="compacted"`) {
		t.Fatal("a run not compacted says it was")
	}
	var v RunView
	if code := get(t, base+"/api/v1/runs/392660", &v); code != 200 || v.Compacted != nil {
		t.Fatalf("API before compaction: %d, compacted %+v", code, v.Compacted)
	}
	got, err := w.st.CompactReleased(w.ctx, store.CompactQuery{ReleasedBefore: worldNow.Add(1000 * time.Hour), Now: worldNow})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, runReleased) {
		t.Fatalf("compacted %v, not the released run %d", got, runReleased)
	}
	code, page, _ := fetch(t, base+"/runs/392660")
	if code != 200 {
		t.Fatalf("run page after compaction: %d", code)
	}
	noHostileMarkup(t, "compacted run page", page)
	for _, s := range []string{
		`<svg xmlns="http://www.w3.org/2000/svg" class="plot" id="timeline"`,
		`raw observations were compacted`,
		`<table class="list" id="compacted-groups">`,
		`<td>harvest</td>`,
		`<th scope="row"><a href="/workflows/SiStripGains">SiStripGains</a></th>`,
	} {
		if !strings.Contains(page, s) {
			t.Errorf("compacted run page lacks %q", s)
		}
	}
	// The timeline keeps its milestones: the same number of milestone marks as before.
	if n, m := strings.Count(before, `class="ms`), strings.Count(page, `class="ms`); n == 0 || n != m {
		t.Errorf("milestone marks: %d before compaction, %d after", n, m)
	}
	if code := get(t, base+"/api/v1/runs/392660", &v); code != 200 || v.Compacted == nil || v.Compacted.Observations == 0 || len(v.Milestones) == 0 {
		t.Fatalf("API after compaction: %d, compacted %+v, milestones %v", code, v.Compacted, v.Milestones)
	}
	// A late fact of the run (a DQM result after the compaction) is counted on the page and in the API,
	// not stored.
	late := pcl.Observation{Source: pcl.SourceDQM, Kind: pcl.KindDQMQuality, Run: 392660, At: worldNow, Seen: worldNow,
		Workflow: "SiStripGains", Quality: pcl.QualityBad,
		Dataset: "/StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT"}
	if added, err := w.st.AppendObservations(w.ctx, []pcl.Observation{late}); err != nil || len(added) != 0 {
		t.Fatalf("late fact: stored %d, %v", len(added), err)
	}
	if code := get(t, base+"/api/v1/runs/392660", &v); code != 200 || v.Compacted == nil || v.Compacted.LateObservations != 1 {
		t.Fatalf("API after a late fact: %d, compacted %+v", code, v.Compacted)
	}
	if _, page, _ := fetch(t, base+"/runs/392660"); !strings.Contains(page, `id="late-observations">Late facts, delivered by the spies after the compaction (a late upload, a backfill over released history) and counted, not stored: 1.</p>`) {
		t.Errorf("the run page does not count the late fact")
	}
	// An override of a compacted run is refused, and changes nothing.
	if code, body := post(t, base+"/api/v1/runs/392660/override", `{"action":"hold","reason":"late look"}`); code != 409 {
		t.Errorf("override of a compacted run: %d %v, want 409", code, body)
	}
}
