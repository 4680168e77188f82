package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

const h1 = "2f1a7c3e5b9d0c4e6f8a1b2c3d4e5f6071829304"
const h2 = "8e0de5b20e773ccdb9b8a52da069c8cdb641f5a3"
const h3 = "5d41402abc4b2a76b9719d911017c592aa2f03b6"

// SiPixelQuality's three inputs, each with its own prompt tag.
const (
	pxPrompt = "SiPixelQualityFromDbRcd_prompt"
	pxOther  = "SiPixelQualityFromDbRcd_other"
	pxStuck  = "SiPixelQualityFromDbRcd_stuckTBM"
)

func reconcileAt(obs []pcl.Observation, now time.Duration, sources map[pcl.Source]SourceView) pcl.RunState {
	return Reconcile(Input{Run: testRun, Observations: obs, Catalogue: catalog, Policy: pcl.DefaultPolicy(),
		Sources: sources, Now: at(now)})
}

func TestWorkflowStates(t *testing.T) {
	t.Parallel()
	short := t0.Add(-4*time.Hour + 2*time.Minute)
	cosmicsStop := t0
	tests := []struct {
		name     string
		obs      []pcl.Observation
		now      time.Duration
		sources  map[pcl.Source]SourceView
		workflow string
		want     pcl.State
		reason   string // a piece the reason must contain
	}{
		{name: "ongoing run is pending", obs: one(runObs("Collisions25", nil)), now: -time.Hour,
			workflow: "SiStripGains", want: pcl.StatePending, reason: "run ongoing"},
		{name: "stopped run without express config is pending", obs: one(stopped()), now: time.Hour,
			workflow: "SiStripGains", want: pcl.StatePending, reason: "express configuration"},
		{name: "producer not in alca_skim is not expected",
			obs: one(stopped(), expressConfig("Express", "PromptCalibProdSiPixelAli")), now: time.Hour,
			workflow: "SiStripGains", want: pcl.StateNotExpected, reason: "alca_skim"},
		{name: "stream absent is not expected (cosmics workflow in a collisions run)",
			obs: concat(one(stopped()), collisionsConfig()), now: time.Hour,
			workflow: "SiStripLA", want: pcl.StateNotExpected},
		{name: "cosmics workflow runs in ExpressCosmics",
			obs: one(runObs("Cosmics25", &cosmicsStop), expressConfig("ExpressCosmics", "PromptCalibProdSiStripLA")), now: time.Hour,
			workflow: "SiStripLA", want: pcl.StateAwaitingHarvest},
		{name: "heavy-ion express stream runs Express workflows",
			obs: one(stopped(), expressConfig("HIExpress", "PromptCalibProdSiStripGains")), now: time.Hour,
			workflow: "SiStripGains", want: pcl.StateAwaitingHarvest},
		{name: "short run expects nothing",
			obs: concat(one(runObs("Collisions25", &short)), collisionsConfig()), now: time.Hour,
			workflow: "SiStripGains", want: pcl.StateNotExpected, reason: "shorter than"},
		{name: "stopped, no harvest output", obs: concat(one(stopped()), collisionsConfig()), now: time.Hour,
			workflow: "SiStripGains", want: pcl.StateAwaitingHarvest, reason: "no harvest output"},
		{name: "stream done but harvest area not rescanned since: no conclusion from absence",
			obs: concat(one(stopped(), streamDone("Express", 3*time.Hour)), collisionsConfig()), now: 4 * time.Hour,
			sources: freshSources(2 * time.Hour), workflow: "SiStripGains", want: pcl.StateAwaitingHarvest, reason: "scan after"},
		{name: "stream done and harvest rescanned: no payload",
			obs: concat(one(stopped(), streamDone("Express", 3*time.Hour)), collisionsConfig()), now: 4 * time.Hour,
			sources: freshSources(3*time.Hour + time.Minute), workflow: "SiStripGains", want: pcl.StateNoPayload},
		{name: "harvested", obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateHarvested, reason: "not uploaded yet"},
		{name: "uploading after the marker",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1), marker("SiStripApvGain_pcl", 61*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateUploading},
		{name: "uploaded to every tag, not in the DB yet",
			obs: concat(one(stopped()), gainsInDB(h1)[:4], collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateUploaded, reason: "not yet in SiStripApvGain_PCL_v0_hlt"},
		{name: "in one destination tag of two is not in-db",
			obs: concat(one(stopped()), gainsInDB(h1)[:5], collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateUploaded, reason: "not yet in SiStripApvGain_PCL_v0_prompt"},
		{name: "in every destination tag", obs: concat(one(stopped()), gainsInDB(h1), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "in-db without the upload log (the IOVs are the proof)",
			obs: concat(one(stopped(), gainsInDB(h1)[0], gainsInDB(h1)[4], gainsInDB(h1)[5]), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "in an hlt tag a since moved up to the next run counts as delivered",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				iov("SiStripApvGain_PCL_v0_hlt", testRun+5, h1, 71*time.Minute),
				iov("SiStripApvGain_PCL_v0_prompt", testRun, h1, 71*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "in a pcl tag the payload only at a later run's since is not in the DB for this run",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadOK, 70*time.Minute),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", pcl.UploadOK, 70*time.Minute),
				iov("SiStripApvGain_PCL_v0_hlt", testRun+5, h1, 71*time.Minute),
				iov("SiStripApvGain_PCL_v0_prompt", testRun+5, h1, 71*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateUploaded,
			reason: "not yet in SiStripApvGain_PCL_v0_prompt (SiStripApvGain_PCL_v0_prompt: the run's payload landed at since 392685 (run 392685), which PromptReco of run 392680 does not read)"},
		{name: "another payload at the run's since is not ours",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				iov("SiStripApvGain_PCL_v0_hlt", testRun, h2, 71*time.Minute),
				iov("SiStripApvGain_PCL_v0_prompt", testRun, h2, 71*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateHarvested},
		{name: "our payload inserted before the harvest is an older copy, not ours",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				iov("SiStripApvGain_PCL_v0_hlt", testRun-40, h1, -time.Hour),
				iov("SiStripApvGain_PCL_v0_prompt", testRun-40, h1, -time.Hour)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateHarvested},
		{name: "snapshot: a newer row at the same since replaces our payload",
			obs: concat(one(stopped()), gainsInDB(h1), one(iov("SiStripApvGain_PCL_v0_prompt", testRun, h2, 80*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateUploaded},
		{name: "without hashes, a run-typed since equal to the run after stop matches",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour),
				iov("SiStripApvGain_PCL_v0_hlt", testRun, h1, 71*time.Minute),
				iov("SiStripApvGain_PCL_v0_prompt", testRun, h1, 71*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "without hashes, a lumi-packed since of the run matches",
			obs: concat(one(stopped(), harvest("BeamSpotObjectHP_ByLumi", time.Hour),
				iov("BeamSpotObjects_PCL_byLumi_v0_prompt", pcl.PackLumi(testRun, 35), h1, 71*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "BeamSpotHP", want: pcl.StateInDB},
		{name: "without hashes, a lumi-packed since of another run does not match",
			obs: concat(one(stopped(), harvest("BeamSpotObjectHP_ByLumi", time.Hour),
				iov("BeamSpotObjects_PCL_byLumi_v0_prompt", pcl.PackLumi(testRun-1, 35), h1, 71*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "BeamSpotHP", want: pcl.StateHarvested},
		{name: "metadata naming the catalogue's tags in another order still matches",
			obs: concat(one(stopped(), func() pcl.Observation {
				h := harvest("SiStripApvGain_pcl", time.Hour, h1)
				h.Destinations = []string{"SiStripApvGain_PCL_v0_prompt", "SiStripApvGain_PCL_v0_hlt"}
				return h
			}(), iov("SiStripApvGain_PCL_v0_hlt", testRun, h1, 71*time.Minute),
				iov("SiStripApvGain_PCL_v0_prompt", testRun, h1, 72*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "metadata naming one catalogue tag and one other",
			obs: concat(one(stopped(), func() pcl.Observation {
				h := harvest("SiStripApvGain_pcl", time.Hour, h1)
				h.Destinations = []string{"SiStripApvGain_PCL_v0_prompt", "SiStripApvGain_PCL_v1_special"}
				return h
			}(), iov("SiStripApvGain_PCL_v1_special", testRun, h1, 71*time.Minute),
				iov("SiStripApvGain_PCL_v0_prompt", testRun, h1, 72*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "metadata naming too many destination tags is never in-db",
			obs: concat(one(stopped(), func() pcl.Observation {
				h := harvest("SiStripApvGain_pcl", time.Hour, h1)
				h.Destinations = nil
				for i := range 9 {
					h.Destinations = append(h.Destinations, fmt.Sprintf("SiStripApvGain_PCL_v%d_prompt", i))
				}
				return h
			}(), iov("SiStripApvGain_PCL_v0_prompt", testRun, h1, 72*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateHarvested, reason: "at most 8"},
		{name: "upload failed",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1), marker("SiStripApvGain_pcl", 61*time.Minute),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadFail, 70*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateUploadFailed, reason: "fail"},
		{name: "too late",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", pcl.UploadTooLate, 70*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateTooLate},
		{name: "a retried upload that succeeds replaces the failure",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadFail, 70*time.Minute),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadOK, 90*time.Minute),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", pcl.UploadOK, 90*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateUploaded},
		{name: "a skipped destination needs no IOV",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadSkip, 70*time.Minute),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", pcl.UploadOK, 70*time.Minute),
				iov("SiStripApvGain_PCL_v0_prompt", testRun, h1, 72*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "timed out after the workflow deadline",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1)), collisionsConfig()),
			now: 21 * time.Hour, workflow: "SiStripGains", want: pcl.StateTimedOut, reason: "was harvested"},
		{name: "an accepted failure",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadFail, 70*time.Minute),
				override(pcl.OverrideAccept, "SiStripGains", 3*time.Hour)), collisionsConfig()),
			now: 4 * time.Hour, workflow: "SiStripGains", want: pcl.StateAccepted, reason: "accepted by shifter"},
		{name: "an accept cleared again",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1),
				upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadFail, 70*time.Minute),
				override(pcl.OverrideAccept, "SiStripGains", 3*time.Hour), override(pcl.OverrideClear, "SiStripGains", 3*time.Hour+time.Minute)), collisionsConfig()),
			now: 4 * time.Hour, workflow: "SiStripGains", want: pcl.StateUploadFailed},
		{name: "an accept does not touch a workflow still in progress",
			obs: concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1), override(pcl.OverrideAccept, "SiStripGains", 3*time.Hour)), collisionsConfig()),
			now: 4 * time.Hour, workflow: "SiStripGains", want: pcl.StateHarvested},
		{name: "a workflow with several inputs is as far as its least advanced input",
			obs: concat(one(stopped(), harvest(pxPrompt, time.Hour, h1), harvest(pxOther, time.Hour, h2), harvest(pxStuck, time.Hour, h3),
				iov("SiPixelQuality_byPCL_prompt_v2", pcl.PackLumi(testRun, 1), h1, 80*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiPixelQuality", want: pcl.StateHarvested},
		{name: "a workflow with several inputs all in the DB",
			obs: concat(one(stopped(), harvest(pxPrompt, time.Hour, h1), harvest(pxOther, time.Hour, h2), harvest(pxStuck, time.Hour, h3),
				iov("SiPixelQuality_byPCL_prompt_v2", pcl.PackLumi(testRun, 1), h1, 80*time.Minute),
				iov("SiPixelQuality_byPCL_other_v1", pcl.PackLumi(testRun, 1), h2, 80*time.Minute),
				iov("SiPixelQuality_byPCL_stuckTBM_v1", pcl.PackLumi(testRun, 1), h3, 80*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiPixelQuality", want: pcl.StateInDB},
		{name: "an input still missing before the stream is done keeps the workflow open",
			obs: concat(one(stopped(), harvest(pxPrompt, time.Hour, h1),
				iov("SiPixelQuality_byPCL_prompt_v2", pcl.PackLumi(testRun, 1), h1, 80*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, workflow: "SiPixelQuality", want: pcl.StateUploaded,
			reason: "waiting for the files of SiPixelQualityFromDbRcd_other, SiPixelQualityFromDbRcd_stuckTBM"},
		{name: "an input that never came once the stream is done and rescanned leaves its tags without a payload",
			obs: concat(one(stopped(), streamDone("Express", 90*time.Minute), harvest(pxPrompt, time.Hour, h1), harvest(pxOther, time.Hour, h2),
				iov("SiPixelQuality_byPCL_prompt_v2", pcl.PackLumi(testRun, 1), h1, 80*time.Minute),
				iov("SiPixelQuality_byPCL_other_v1", pcl.PackLumi(testRun, 1), h2, 80*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, sources: freshSources(100 * time.Minute), workflow: "SiPixelQuality", want: pcl.StateNoPayload,
			reason: "no file of SiPixelQualityFromDbRcd_stuckTBM in the harvest area (the other inputs: "},
		{name: "an input that never came, accepted by the operator",
			obs: concat(one(stopped(), streamDone("Express", 90*time.Minute), harvest(pxPrompt, time.Hour, h1), harvest(pxOther, time.Hour, h2),
				iov("SiPixelQuality_byPCL_prompt_v2", pcl.PackLumi(testRun, 1), h1, 80*time.Minute),
				iov("SiPixelQuality_byPCL_other_v1", pcl.PackLumi(testRun, 1), h2, 80*time.Minute),
				override(pcl.OverrideAccept, "SiPixelQuality", 3*time.Hour)), collisionsConfig()),
			now: 4 * time.Hour, sources: freshSources(100 * time.Minute), workflow: "SiPixelQuality", want: pcl.StateAccepted},
		{name: "an input that never came is a no-payload nothing confirms, even in commissioning",
			obs: concat(one(runObs("Commissioning25", &t0), streamDone("Express", 90*time.Minute), harvest(pxPrompt, time.Hour, h1),
				iov("SiPixelQuality_byPCL_prompt_v2", pcl.PackLumi(testRun, 1), h1, 80*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, sources: freshSources(100 * time.Minute), workflow: "SiPixelQuality", want: pcl.StateNoPayload,
			reason: "no file of SiPixelQualityFromDbRcd_other, SiPixelQualityFromDbRcd_stuckTBM in the harvest area (the other inputs:"},
		{name: "an input that never came does not hide another input's failure",
			obs: concat(one(stopped(), streamDone("Express", 90*time.Minute), harvest(pxPrompt, time.Hour, h1),
				upload(pxPrompt, "SiPixelQuality_byPCL_prompt_v2", pcl.UploadFail, 70*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, sources: freshSources(100 * time.Minute), workflow: "SiPixelQuality", want: pcl.StateUploadFailed},
		{name: "the legacy beam spot's by-lumi file is not an input: its by-run payload decides",
			obs: concat(one(stopped(), streamDone("Express", 90*time.Minute), harvest("BeamSpotObject_ByRun", time.Hour, h1),
				iov("BeamSpotObjects_PCL_byRun_v0_prompt", testRun, h1, 80*time.Minute)), collisionsConfig()),
			now: 2 * time.Hour, sources: freshSources(100 * time.Minute), workflow: "BeamSpotByRun+ByLumi", want: pcl.StateInDB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := reconcileAt(tc.obs, tc.now, tc.sources)
			ws, ok := rs.Workflow(tc.workflow)
			if !ok {
				t.Fatalf("no workflow %s in %+v", tc.workflow, rs.Workflows)
			}
			if ws.State != tc.want {
				t.Fatalf("%s: state %s (%s), want %s", tc.workflow, ws.State, ws.Reason, tc.want)
			}
			if !strings.Contains(ws.Reason, tc.reason) {
				t.Errorf("%s: reason %q lacks %q", tc.workflow, ws.Reason, tc.reason)
			}
			checkInvariant(t, rs, pcl.DefaultPolicy())
		})
	}
}

// onlyGains requires SiStripGains alone, so that readiness tests can speak of one workflow.
func onlyGains(onTimeout pcl.OnTimeout) pcl.Policy {
	p := pcl.DefaultPolicy()
	for i := range p.Classes {
		p.Classes[i].Required = []string{"SiStripGains"}
		p.Classes[i].OnTimeout = onTimeout
	}
	return p
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	base := concat(one(stopped()), collisionsConfig())
	failed := concat(base, one(harvest("SiStripApvGain_pcl", time.Hour, h1),
		upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadFail, 70*time.Minute)))
	tests := []struct {
		name       string
		obs        []pcl.Observation
		now        time.Duration
		policy     pcl.Policy
		want       pcl.Readiness
		releasable bool
		blocking   []string
		reason     string
		sources    map[pcl.Source]SourceView // default: every source seen at now
	}{
		{name: "ongoing", obs: one(runObs("Collisions25", nil)), now: -time.Hour, want: pcl.ReadinessOngoing},
		{name: "unknown to OMS", obs: one(harvest("SiStripApvGain_pcl", time.Hour, h1)), now: 2 * time.Hour,
			want: pcl.ReadinessWaiting, blocking: []string{"SiStripGains"}, reason: "OMS"},
		{name: "no express config", obs: one(stopped()), now: time.Hour, want: pcl.ReadinessWaiting, reason: "express configuration"},
		{name: "waiting with the story of the blocking workflow", obs: concat(base, gainsInDB(h1)[:4]), now: 2 * time.Hour,
			want: pcl.ReadinessWaiting, blocking: []string{"SiStripGains"},
			reason: "waiting for SiStripGains: uploaded May 29 13:10, not yet in SiStripApvGain_PCL_v0_hlt, SiStripApvGain_PCL_v0_prompt"},
		{name: "ready", obs: concat(base, gainsInDB(h1)), now: 2 * time.Hour, want: pcl.ReadinessReady, releasable: true, blocking: []string{}},
		{name: "every expected workflow is required by default", obs: concat(base, gainsInDB(h1)), now: 2 * time.Hour,
			policy: pcl.DefaultPolicy(), want: pcl.ReadinessWaiting, reason: "(and 9 more)"},
		{name: "a bad final state blocks", obs: failed, now: 3 * time.Hour, want: pcl.ReadinessBlocked, blocking: []string{"SiStripGains"},
			reason: "SiStripGains upload-failed (upload of SiStripApvGain_pcl to SiStripApvGain_PCL_v0_hlt: fail log text"},
		{name: "a blocked run says what unblocks it", obs: failed, now: 3 * time.Hour, want: pcl.ReadinessBlocked,
			reason: "): accept it, release the run, or fix and re-upload"},
		{name: "a bad final state blocks while other workflows still run", obs: failed, now: 3 * time.Hour, policy: pcl.DefaultPolicy(),
			want: pcl.ReadinessBlocked, reason: "SiStripGains upload-failed"},
		{name: "a workflow timed out before the run's deadline blocks", obs: concat(base, one(harvest("SiStripApvGain_pcl", time.Hour, h1))),
			now: 21 * time.Hour, want: pcl.ReadinessBlocked, blocking: []string{"SiStripGains"}, reason: "SiStripGains timed-out (no final state 20h0m0s after stop"},
		{name: "a blocked run times out at the run's deadline", obs: failed, now: 47*time.Hour + 30*time.Minute, want: pcl.ReadinessTimedOut,
			releasable: true, reason: "released by policy"},
		{name: "a hold beats blocked", obs: concat(failed, one(override(pcl.OverrideHold, "", 3*time.Hour))), now: 4 * time.Hour,
			want: pcl.ReadinessHeld},
		{name: "timed out, released by policy", obs: failed, now: 49 * time.Hour, want: pcl.ReadinessTimedOut, releasable: true,
			blocking: []string{"SiStripGains"}, reason: "released by policy"},
		{name: "timed out, held by policy", obs: failed, now: 49 * time.Hour, policy: onlyGains(pcl.OnTimeoutHold),
			want: pcl.ReadinessTimedOut, releasable: false, reason: "held until an operator acts"},
		{name: "held", obs: concat(base, gainsInDB(h1), one(override(pcl.OverrideHold, "", 3*time.Hour))), now: 4 * time.Hour,
			want: pcl.ReadinessHeld, reason: "held by shifter"},
		{name: "hold cleared", obs: concat(base, gainsInDB(h1), one(override(pcl.OverrideHold, "", 3*time.Hour), override(pcl.OverrideClear, "", 4*time.Hour))),
			now: 5 * time.Hour, want: pcl.ReadinessReady, releasable: true},
		{name: "forced", obs: concat(failed, one(override(pcl.OverrideRelease, "", 3*time.Hour))), now: 4 * time.Hour,
			want: pcl.ReadinessForced, releasable: true, reason: "forced by shifter"},
		{name: "accepted failure makes the run ready", obs: concat(failed, one(override(pcl.OverrideAccept, "SiStripGains", 3*time.Hour))),
			now: 4 * time.Hour, want: pcl.ReadinessReady, releasable: true},
		{name: "released by Tier-0 whatever else", obs: concat(failed, one(override(pcl.OverrideHold, "", 3*time.Hour), release(50*time.Hour))),
			now: 51 * time.Hour, want: pcl.ReadinessReleased, releasable: true, reason: "JetMET0"},
		{name: "an unconfirmed no payload blocks a collisions run", obs: concat(base, one(streamDone("Express", 18*time.Hour))), now: 19 * time.Hour,
			want: pcl.ReadinessBlocked, blocking: []string{"SiStripGains"}, reason: "SiStripGains no-payload (Express done at"},
		{name: "no payload not yet concluded waits", obs: concat(base, one(streamDone("Express", 2*time.Hour))), now: 3 * time.Hour,
			sources: freshSources(time.Hour), want: pcl.ReadinessWaiting, blocking: []string{"SiStripGains"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.policy
			if p.Classes == nil {
				p = onlyGains(pcl.OnTimeoutRelease)
			}
			sources := tc.sources
			if sources == nil {
				sources = freshSources(tc.now)
			}
			rs := Reconcile(Input{Run: testRun, Observations: tc.obs, Catalogue: catalog, Policy: p,
				Sources: sources, Now: at(tc.now)})
			d := rs.Decision
			if d.State != tc.want || d.Releasable != tc.releasable {
				t.Fatalf("readiness %s releasable=%v (%s), want %s releasable=%v", d.State, d.Releasable, d.Reason, tc.want, tc.releasable)
			}
			if tc.blocking != nil && !slices.Equal(d.Blocking, tc.blocking) {
				t.Errorf("blocking %v, want %v", d.Blocking, tc.blocking)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", d.Reason, tc.reason)
			}
			checkInvariant(t, rs, p)
		})
	}
}

// TestNoPayloadEvidence: the evidence rules of a no-payload (design.md, "No payload"; docs/operator-guide.md).
// It is ok where a source confirms that the harvest ran and wrote nothing, the DQM GUI (every quality test
// 30, insufficient statistics) or Tier-0 (the stream done before its 18 h upload timeout); absence that
// nothing confirms blocks the run, and the reason says what is missing and what to do.
func TestNoPayloadEvidence(t *testing.T) {
	t.Parallel()
	config := collisionsConfig()
	strict := pcl.DefaultPolicy()
	strict.Classes[0].RequirePayload = []string{"SiStripGains"}
	lenient := onlyGains(pcl.OnTimeoutRelease)
	lenient.Classes[0].NoPayloadOK = []string{"SiStripGains"}
	for _, tc := range []struct {
		name      string
		extra     []pcl.Observation
		now       time.Duration
		policy    pcl.Policy
		confirmed bool
		want      pcl.Readiness
		reason    string // in the workflow's reason
		decision  string // in the decision's reason
	}{
		{name: "Tier-0 finished the stream early: confirmed", extra: one(streamDone("Express", 2*time.Hour)), now: 3 * time.Hour,
			confirmed: true, want: pcl.ReadinessReady, reason: "confirmed: Tier-0 finished the stream 2h0m0s after stop"},
		{name: "done only at the upload timeout: unconfirmed, blocked", extra: one(streamDone("Express", 18*time.Hour+time.Minute)), now: 19 * time.Hour,
			want: pcl.ReadinessBlocked, reason: "nothing confirms it", decision: "if the harvest ran and found too few events, accept it"},
		{name: "done at the timeout, the DQM GUI says insufficient statistics: confirmed",
			extra: one(streamDone("Express", 18*time.Hour+time.Minute), quality("SiStripGains", pcl.QualityInsufficient, 2*time.Hour)), now: 19 * time.Hour,
			confirmed: true, want: pcl.ReadinessReady, reason: "confirmed: the DQM GUI's quality tests say insufficient statistics"},
		{name: "an unknown DQM verdict confirms nothing",
			extra: one(streamDone("Express", 18*time.Hour+time.Minute), quality("SiStripGains", pcl.QualityUnknown, 2*time.Hour)), now: 19 * time.Hour,
			want: pcl.ReadinessBlocked, reason: "nothing confirms it"},
		{name: "a workflow the policy requires to deliver blocks even when confirmed", extra: one(streamDone("Express", 2*time.Hour)),
			now: 3 * time.Hour, policy: strict, confirmed: true, want: pcl.ReadinessBlocked, decision: "SiStripGains no-payload"},
		{name: "no_payload_ok accepts an absence nothing confirms", extra: one(streamDone("Express", 18*time.Hour+time.Minute)), now: 19 * time.Hour,
			policy: lenient, want: pcl.ReadinessReady, reason: "nothing confirms it"},
		{name: "an unconfirmed no-payload accepted by an operator",
			extra: one(streamDone("Express", 18*time.Hour+time.Minute), override(pcl.OverrideAccept, "SiStripGains", 19*time.Hour)), now: 20 * time.Hour,
			want: pcl.ReadinessReady, reason: "accepted by shifter"},
		{name: "unconfirmed times out at the run's deadline", extra: one(streamDone("Express", 18*time.Hour+time.Minute)), now: 48 * time.Hour,
			want: pcl.ReadinessTimedOut, decision: "released by policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.policy
			if p.Classes == nil {
				p = onlyGains(pcl.OnTimeoutRelease)
			}
			obs := concat(one(stopped()), config, tc.extra)
			rs := Reconcile(Input{Run: testRun, Observations: obs, Catalogue: catalog, Policy: p, Sources: freshSources(tc.now), Now: at(tc.now)})
			ws, _ := rs.Workflow("SiStripGains")
			if got := ws.HasFlag(pcl.FlagNoPayloadConfirmed); got != tc.confirmed {
				t.Errorf("%s (%s): confirmed flag %v, want %v", ws.State, ws.Reason, got, tc.confirmed)
			}
			if rs.Decision.State != tc.want {
				t.Errorf("readiness %s (%s), want %s", rs.Decision.State, rs.Decision.Reason, tc.want)
			}
			if !strings.Contains(ws.Reason, tc.reason) {
				t.Errorf("workflow reason %q lacks %q", ws.Reason, tc.reason)
			}
			if !strings.Contains(rs.Decision.Reason, tc.decision) {
				t.Errorf("decision reason %q lacks %q", rs.Decision.Reason, tc.decision)
			}
			checkInvariant(t, rs, p)
		})
	}
}

func TestNoPayloadAllowedForCosmics(t *testing.T) {
	t.Parallel()
	stop := t0
	obs := one(runObs("Cosmics25", &stop), expressConfig("ExpressCosmics", "PromptCalibProdSiStrip", "PromptCalibProdSiStripLA"),
		streamDone("ExpressCosmics", time.Hour))
	rs := reconcileAt(obs, 2*time.Hour, freshSources(90*time.Minute))
	if rs.Decision.State != pcl.ReadinessReady {
		t.Fatalf("cosmics run with no payloads: %s (%s), want ready", rs.Decision.State, rs.Decision.Reason)
	}
	for _, name := range []string{"SiStripQuality", "SiStripLA"} {
		if ws, _ := rs.Workflow(name); ws.State != pcl.StateNoPayload {
			t.Errorf("%s: %s, want no-payload", name, ws.State)
		}
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	base := concat(one(stopped()), collisionsConfig())
	prev := iov("SiStripApvGain_PCL_v0_prompt", testRun, h1, 72*time.Minute)
	prev.Previous = h1
	late := harvest("SiStripApvGain_pcl", 13*time.Hour, h1)
	late.Prep = true
	lumiGap := harvest("BeamSpotObjectHP_ByLumi", time.Hour, h1)
	lumiGap.Payloads[0].Since = pcl.PackLumi(testRun, 40)
	noPixel := stopped()
	noPixel.RunInfo.Components = []string{"TRACKER", "ECAL"}
	zeroT := stopped()
	zeroT.RunInfo.BField = 0.02
	tests := []struct {
		name     string
		obs      []pcl.Observation
		now      time.Duration
		fcsr     uint32
		workflow string
		want     pcl.Flag
		absent   bool
	}{
		{name: "unchanged payload", obs: concat(base, gainsInDB(h1)[:5], one(prev)), now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.FlagUnchangedPayload},
		{name: "new payload is not unchanged", obs: concat(base, gainsInDB(h1)), now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.FlagUnchangedPayload, absent: true},
		{name: "at risk late in the deadline window", obs: base, now: 16 * time.Hour, workflow: "SiStripGains", want: pcl.FlagAtRisk},
		{name: "not at risk early", obs: base, now: time.Hour, workflow: "SiStripGains", want: pcl.FlagAtRisk, absent: true},
		{name: "at risk once the FCSR passed the run", obs: base, now: time.Hour, fcsr: testRun + 1, workflow: "SiStripGains", want: pcl.FlagAtRisk},
		{name: "detector off", obs: concat(one(noPixel), collisionsConfig()), now: time.Hour, workflow: "SiPixelAli", want: pcl.FlagDetectorOff},
		{name: "detector on", obs: concat(one(noPixel), collisionsConfig()), now: time.Hour, workflow: "SiStripGains", want: pcl.FlagDetectorOff, absent: true},
		{name: "special run at zero field", obs: concat(one(zeroT), collisionsConfig()), now: time.Hour, workflow: "SiStripGains", want: pcl.FlagSpecialRun},
		{name: "vetoed by DQM", obs: concat(base, gainsInDB(h1), one(quality("SiStripGains", pcl.QualityBad, 3*time.Hour))), now: 4 * time.Hour, workflow: "SiStripGains", want: pcl.FlagVetoed},
		{name: "routed to prep", obs: concat(base, one(late)), now: 14 * time.Hour, workflow: "SiStripGains", want: pcl.FlagRoutedToPrep},
		{name: "partial statistics after the harvest timeout", obs: concat(base, one(late)), now: 14 * time.Hour, workflow: "SiStripGains", want: pcl.FlagPartialStatistics},
		{name: "lumi gap", obs: concat(base, one(lumiGap)), now: 2 * time.Hour, workflow: "BeamSpotHP", want: pcl.FlagLumiGap},
		{name: "upload burst", obs: concat(base, gainsInDB(h1), one(upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadOK, 75*time.Minute))),
			now: 2 * time.Hour, workflow: "SiStripGains", want: pcl.FlagUploadBurst},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := Reconcile(Input{Run: testRun, Observations: tc.obs, Catalogue: catalog, Policy: pcl.DefaultPolicy(),
				FCSR: tc.fcsr, Now: at(tc.now)})
			ws, _ := rs.Workflow(tc.workflow)
			if has := slices.Contains(ws.Flags, tc.want); has == tc.absent {
				t.Fatalf("%s flags %v (state %s): want %s present=%v", tc.workflow, ws.Flags, ws.State, tc.want, !tc.absent)
			}
		})
	}
}

func TestQualityAndMilestones(t *testing.T) {
	t.Parallel()
	obs := concat(one(stopped(), streamDone("Express", 3*time.Hour), quality("SiStripGains", pcl.QualityWarning, 2*time.Hour)),
		gainsInDB(h1), collisionsConfig())
	rs := reconcileAt(obs, 4*time.Hour, freshSources(4*time.Hour))
	ws, _ := rs.Workflow("SiStripGains")
	if ws.Quality != pcl.QualityWarning {
		t.Errorf("quality %s, want warning", ws.Quality)
	}
	// The stream was seen done at +3h, after the harvest file was written at +1h: express processing
	// cannot end after its harvest, so express-done is bounded by it, and marked as observed.
	want := map[pcl.Milestone]time.Time{pcl.MilestoneStop: t0, pcl.MilestoneExpressDone: at(time.Hour),
		pcl.MilestoneHarvested: at(time.Hour), pcl.MilestoneUploadSent: at(61 * time.Minute),
		pcl.MilestoneUploaded: at(70 * time.Minute), pcl.MilestoneInDB: at(72 * time.Minute)}
	for m, w := range want {
		if got := ws.Milestones.Get(m); !got.Equal(w) {
			t.Errorf("milestone %s = %s, want %s", m, got, w)
		}
	}
	if got := ws.Milestones.Observed.List(); !slices.Equal(got, []pcl.Milestone{pcl.MilestoneExpressDone}) {
		t.Errorf("observed milestones %v, want express-done only", got)
	}
	if !slices.Equal(ws.Hashes, []string{h1}) {
		t.Errorf("hashes %v", ws.Hashes)
	}
}

func TestNextWake(t *testing.T) {
	t.Parallel()
	base := concat(one(stopped()), collisionsConfig())
	rs := Reconcile(Input{Run: testRun, Observations: base, Catalogue: catalog, Policy: onlyGains(pcl.OnTimeoutRelease), Now: at(time.Hour)})
	if want := at(13 * time.Hour); !rs.NextWake.Equal(want) { // Tier-0's 12 h harvest timeout and an hour for its files
		t.Errorf("next wake %s, want the at-risk threshold %s", rs.NextWake, want)
	}
	rs = Reconcile(Input{Run: testRun, Observations: base, Catalogue: catalog, Policy: onlyGains(pcl.OnTimeoutRelease), Now: at(21 * time.Hour)})
	if want := at(47*time.Hour + 30*time.Minute); !rs.NextWake.Equal(want) {
		t.Errorf("next wake %s, want the run deadline %s", rs.NextWake, want)
	}
	// A blocked run changes by time alone at its deadline too: it times out.
	failed := concat(base, one(harvest("SiStripApvGain_pcl", time.Hour, h1), upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", pcl.UploadFail, 70*time.Minute)))
	rs = Reconcile(Input{Run: testRun, Observations: failed, Catalogue: catalog, Policy: onlyGains(pcl.OnTimeoutRelease), Now: at(21 * time.Hour)})
	if want := at(47*time.Hour + 30*time.Minute); rs.Decision.State != pcl.ReadinessBlocked || !rs.NextWake.Equal(want) {
		t.Errorf("%s run: next wake %s, want the run deadline %s", rs.Decision.State, rs.NextWake, want)
	}
	rs = Reconcile(Input{Run: testRun, Observations: concat(base, gainsInDB(h1)), Catalogue: catalog, Policy: onlyGains(pcl.OnTimeoutRelease), Now: at(2 * time.Hour)})
	if !rs.NextWake.IsZero() && rs.Decision.State == pcl.ReadinessReady {
		// Other (not required) workflows still have deadlines, so a wake-up may remain; it must be in the future.
		if !rs.NextWake.After(at(2 * time.Hour)) {
			t.Errorf("next wake %s is not in the future", rs.NextWake)
		}
	}
}

// checkInvariant is the safety invariant of design.md: nothing releasable while a required workflow is
// not ok, unless forced, released by Tier-0, or timed out under a release policy.
func checkInvariant(t *testing.T, rs pcl.RunState, p pcl.Policy) {
	t.Helper()
	d := rs.Decision
	cp := p.For(rs.Class)
	switch d.State {
	case pcl.ReadinessForced, pcl.ReadinessReleased:
		if !d.Releasable {
			t.Errorf("run %d %s but not releasable", rs.Run, d.State)
		}
		return
	case pcl.ReadinessTimedOut:
		if d.Releasable != (cp.OnTimeout == pcl.OnTimeoutRelease) {
			t.Errorf("run %d timed out: releasable=%v under on_timeout=%s", rs.Run, d.Releasable, cp.OnTimeout)
		}
		return
	case pcl.ReadinessReady:
	default:
		if d.Releasable {
			t.Errorf("run %d is %s yet releasable", rs.Run, d.State)
		}
		return
	}
	if !d.Releasable {
		t.Errorf("run %d ready but not releasable", rs.Run)
	}
	for _, ws := range rs.Workflows {
		if ws.Required && !ws.State.OK(cp.NoPayloadAccepted(&ws)) {
			t.Errorf("SAFETY: run %d ready while required %s is %s", rs.Run, ws.Name, ws.State)
		}
	}
}

// TestWaitsFor: a run whose workflow waits for a harvest-area view taken after its stream's end names
// the harvest area, so that the agency looks at it again as soon as that view comes.
func TestWaitsFor(t *testing.T) {
	t.Parallel()
	base := concat(one(stopped()), collisionsConfig())
	done := streamDone("Express", 3*time.Hour)
	pixelPartial := one(harvest(pxPrompt, time.Hour, h1), iov("SiPixelQuality_byPCL_prompt_v2", pcl.PackLumi(testRun, 1), h1, 80*time.Minute))
	harvest := []pcl.Source{pcl.SourceHarvest}
	for _, tc := range []struct {
		name string
		obs  []pcl.Observation
		view time.Duration // of every source
		want []pcl.Source
	}{
		{"stream done, harvest area seen before it", concat(base, one(done)), 2 * time.Hour, harvest},
		{"stream done, harvest area seen at that instant", concat(base, one(done)), 3 * time.Hour, harvest},
		{"stream done, harvest area seen after it: concluded", concat(base, one(done)), 4 * time.Hour, nil},
		{"stream not done: nothing to conclude from absence", base, 4 * time.Hour, nil},
		{"an input still missing after the stream's end", concat(base, one(done), pixelPartial), 2 * time.Hour, harvest},
		{"released: waits for nothing", concat(base, one(done, release(3*time.Hour+time.Minute))), 2 * time.Hour, nil},
	} {
		rs := Reconcile(Input{Run: testRun, Observations: tc.obs, Catalogue: catalog, Policy: pcl.DefaultPolicy(),
			Sources: freshSources(tc.view), Now: at(5 * time.Hour)})
		if !slices.Equal(rs.WaitsFor, tc.want) || (tc.want == nil && rs.WaitsFor != nil) {
			t.Errorf("%s: waits for %v, want %v", tc.name, rs.WaitsFor, tc.want)
		}
	}
}
