package agency

import (
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// routed is the size of the payload routing: hashes indexed, and runs that harvested them.
func (x *index) routed() (hashes, runs int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.payloadRuns), len(x.runPayloads)
}

// waits is how many runs wait for src, and how many runs wait for any source.
func (x *index) waits(src pcl.Source) (onSrc, waiting int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.waiting[src]), len(x.waitsFor)
}

// healthOf makes a function the agency's Sources.
type healthOf func() []pcl.SourceHealth

func (f healthOf) SourceHealth() []pcl.SourceHealth { return f() }

// openState is a stored state of an open run, started at start, waiting for srcs.
func openState(r uint32, start time.Time, srcs ...pcl.Source) pcl.RunState {
	return pcl.RunState{Run: r, Info: &pcl.RunInfo{Start: start}, WaitsFor: srcs,
		Decision: pcl.Decision{Run: r, State: pcl.ReadinessWaiting}}
}

// TestIndexRoutesIOVsToTheRunsThatHarvestedThem: a fact touches its own run; an IOV also touches the
// runs whose harvested file carries its payload, wherever its since landed; an FCSR touches nothing
// (it is about every open run, which the agency resyncs).
func TestIndexRoutesIOVsToTheRunsThatHarvestedThem(t *testing.T) {
	t.Parallel()
	x := newIndex(14 * 24 * time.Hour)
	if got := x.learn([]pcl.Observation{harvestFile()}); !slices.Equal(got, []uint32{run}) {
		t.Fatalf("a harvest file touches %v, want its run", got)
	}
	moved := iovAt("SiStripApvGain_PCL_v0_prompt", run+3, 70*time.Minute)
	if got := x.learn([]pcl.Observation{moved}); !slices.Contains(got, run) || !slices.Contains(got, run+3) {
		t.Errorf("an IOV whose since moved up touches %v, want the harvesting run %d and its since's %d", got, run, run+3)
	}
	other := moved
	other.Payload = "ffff"
	if got := x.learn([]pcl.Observation{other}); slices.Contains(got, run) {
		t.Errorf("an IOV of another payload reached run %d", run)
	}
	if got := x.learn([]pcl.Observation{{Source: pcl.SourceTier0, Kind: pcl.KindFCSR, Run: run + 5, At: t0}}); len(got) != 0 {
		t.Errorf("an FCSR touched %v", got)
	}
	if tags := x.harvestedTags(); !slices.Contains(tags, "SiStripApvGain_PCL_v0_hlt") {
		t.Errorf("harvested tags %v miss the metadata's destinations", tags)
	}
}

func TestIndexUnknownRuns(t *testing.T) {
	t.Parallel()
	x := newIndex(14 * 24 * time.Hour)
	x.opened(run)
	iov := iovAt("SiStripApvGain_PCL_v0_hlt", run+3, time.Hour)
	upload := pcl.Observation{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: run + 4, At: t0}
	fcsr := pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindFCSR, Run: run + 5, At: t0}
	later := stoppedRun()
	later.Run = run + 1
	got := x.unknown([]pcl.Observation{stoppedRun(), iov, upload, fcsr, later, later})
	if !slices.Equal(got, []uint32{run + 1}) {
		t.Errorf("unknown runs %v, want only %d: known runs, and runs named by IOVs, uploads and the FCSR, are not new", got, run+1)
	}
}

// TestIndexSettle: an open run is filed under the sources it waits for and moves as its state does; a
// run Tier-0 released with every workflow terminal, or one older than the lookback, leaves every part
// of the index but the known runs.
func TestIndexSettle(t *testing.T) {
	t.Parallel()
	x := newIndex(14 * 24 * time.Hour)
	rs := openState(run, t0.Add(-3*time.Hour), pcl.SourceHarvest, pcl.SourceCondDB)
	x.settle(&rs, t0)
	x.learn([]pcl.Observation{stoppedRun(), harvestFile()})
	if got := x.waitingFor(pcl.SourceHarvest); !slices.Equal(got, []uint32{run}) {
		t.Fatalf("waiting for the harvest area: %v", got)
	}
	rs.WaitsFor = []pcl.Source{pcl.SourceCondDB}
	x.settle(&rs, t0)
	if got := x.waitingFor(pcl.SourceHarvest); len(got) != 0 {
		t.Errorf("still waiting for the harvest area after the state stopped: %v", got)
	}
	if got := x.waitingFor(pcl.SourceCondDB); !slices.Equal(got, []uint32{run}) {
		t.Errorf("waiting for the condition DB: %v", got)
	}

	rs.WaitsFor = nil
	rs.Decision.State = pcl.ReadinessReleased
	rs.Workflows = []pcl.WorkflowStatus{{Name: "SiStripGains", State: pcl.StateNoPayload}}
	x.settle(&rs, t0)
	if open := x.openRuns(); len(open) != 0 {
		t.Errorf("a released, settled run is open: %v", open)
	}
	if h, r := x.routed(); h != 0 || r != 0 {
		t.Errorf("a released, settled run is still routed: %d hashes, %d runs", h, r)
	}
	if n, w := x.waits(pcl.SourceCondDB); n != 0 || w != 0 {
		t.Errorf("a closed run still waits: %d, %d", n, w)
	}
	if hints := x.openHints(); len(hints) != 0 {
		t.Errorf("hints for a closed run: %+v", hints)
	}
	if !x.known[run] {
		t.Error("a closed run is no longer known: its next fact would make a placeholder over its state")
	}

	old := openState(run+1, t0.Add(-15*24*time.Hour))
	x.settle(&old, t0)
	if open := x.openRuns(); len(open) != 0 {
		t.Errorf("a run started 15 days ago is open: %v", open)
	}
}

func TestIndexHints(t *testing.T) {
	t.Parallel()
	x := newIndex(14 * 24 * time.Hour)
	x.opened(run)
	x.opened(run + 1)
	alignment := pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: run, At: t0, Stream: "ExpressAlignment"}
	x.learn([]pcl.Observation{stoppedRun(), config(), alignment,
		{Source: pcl.SourceTier0, Kind: pcl.KindStreamDone, Run: run, At: t0, Stream: "ExpressAlignment", Done: true}})
	got := x.openHints()
	if len(got) != 2 || got[0].Run != run || !got[0].Stopped || !slices.Equal(got[0].Streams, []string{"Express"}) {
		t.Errorf("hints %+v: want run %d stopped with Express not done", got, run)
	}
	if got[1].Run != run+1 || got[1].Stopped || len(got[1].Streams) != 0 {
		t.Errorf("a run no spy reported yet: %+v, want open, not stopped, no streams", got[1])
	}
}
