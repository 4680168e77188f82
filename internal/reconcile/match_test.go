package reconcile

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// withGates is the built-in catalogue with an input's gating said by the catalogue.
func withGates(inputTag string, gates map[string]bool) *pcl.Catalogue {
	ws := pcl.DefaultWorkflows()
	for i := range ws {
		for j := range ws[i].Inputs {
			if ws[i].Inputs[j].Tag == inputTag {
				ws[i].Inputs[j].Gates = gates
			}
		}
	}
	c, err := pcl.NewCatalogue(ws)
	if err != nil {
		panic(err)
	}
	return c
}

// TestMatchingByIOVInEffect: PromptReco of run N reads, in each tag, the IOV in effect at N. In a tag
// that gates PromptReco (pcl, prompt, or unknown; or as the catalogue says) that IOV must carry the
// run's payload; in one that does not (hlt, express, offline...) the payload counts wherever it landed.
func TestMatchingByIOVInEffect(t *testing.T) {
	t.Parallel()
	const (
		gainsIn = "SiStripApvGain_pcl"
		hlt     = "SiStripApvGain_PCL_v0_hlt"
		prompt  = "SiStripApvGain_PCL_v0_prompt"
		bsIn    = "BeamSpotObjectHP_ByLumi"
		bsTag   = "BeamSpotObjects_PCL_byLumi_v0_prompt"
		quality = "SiStripBadChannel_PCL_v1_hlt" // SiStripQuality's one destination: an hlt tag
	)
	gains := func(extra ...pcl.Observation) []pcl.Observation {
		return concat(one(stopped(), harvest(gainsIn, time.Hour, h1)), collisionsConfig(), extra)
	}
	ok := func(dest string, d time.Duration) pcl.Observation { return upload(gainsIn, dest, pcl.UploadOK, d) }
	fail := func(dest string, d time.Duration) pcl.Observation { return upload(gainsIn, dest, pcl.UploadFail, d) }
	tests := []struct {
		name     string
		obs      []pcl.Observation
		cat      *pcl.Catalogue
		syncs    map[string]string // the tags' synchronizations known beyond the run's observations
		workflow string
		want     pcl.State
		reason   string // a piece the reason must contain
	}{
		{name: "own payload at the run's since in a pcl tag",
			obs:      gains(iov(hlt, testRun, h1, 71*time.Minute), iov(prompt, testRun, h1, 72*time.Minute)),
			workflow: "SiStripGains", want: pcl.StateInDB, reason: inDBReason},
		{name: "own upload failed, a later run's identical payload at its own since",
			obs: gains(fail(prompt, 70*time.Minute), iov(hlt, testRun, h1, 71*time.Minute),
				iov(prompt, testRun+1, h1, 5*time.Hour)),
			workflow: "SiStripGains", want: pcl.StateUploadFailed,
			reason: "the run's payload landed at since 392681 (run 392681), which PromptReco of run 392680 does not read"},
		{name: "own upload not yet done, a later run's identical payload at its own since",
			obs:      gains(ok(hlt, 70*time.Minute), ok(prompt, 70*time.Minute), iov(hlt, testRun+1, h1, 5*time.Hour), iov(prompt, testRun+1, h1, 5*time.Hour)),
			workflow: "SiStripGains", want: pcl.StateUploaded, reason: "landed at since 392681 (run 392681)"},
		{name: "a newer insertion at the run's since with another payload wins",
			obs:      gains(iov(hlt, testRun, h1, 71*time.Minute), iov(prompt, testRun, h1, 72*time.Minute), iov(prompt, testRun, h2, 80*time.Minute), ok(hlt, 70*time.Minute), ok(prompt, 70*time.Minute)),
			workflow: "SiStripGains", want: pcl.StateUploaded, reason: "the IOV in effect at since 392680 carries payload " + h2[:12] + ", not this run's"},
		{name: "the run's payload inserted before the harvest is an earlier copy",
			obs:      gains(iov(prompt, testRun, h1, 30*time.Minute), ok(hlt, 70*time.Minute), ok(prompt, 70*time.Minute), iov(hlt, testRun, h1, 71*time.Minute)),
			workflow: "SiStripGains", want: pcl.StateUploaded, reason: "inserted before the harvest"},
		{name: "hlt tag with its since moved up is delivered, and does not gate",
			obs:      gains(iov(hlt, testRun+7, h1, 71*time.Minute), iov(prompt, testRun, h1, 72*time.Minute)),
			workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "an hlt tag of which no IOV was seen is of unknown synchronization, so it gates",
			obs:      gains(iov(prompt, testRun, h1, 72*time.Minute)),
			workflow: "SiStripGains", want: pcl.StateHarvested},
		{name: "an hlt tag of which the run has no IOV: its synchronization known from the condition DB",
			obs: gains(fail(hlt, 70*time.Minute), iov(prompt, testRun, h1, 72*time.Minute)), syncs: map[string]string{hlt: "hlt", prompt: "pcl"},
			workflow: "SiStripGains", want: pcl.StateInDB, reason: "does not gate PromptReco, says fail"},
		{name: "the run's own IOV of a tag says its synchronization before the condition DB's word",
			obs:      gains(iov(hlt, testRun, h1, 71*time.Minute), iov(prompt, testRun+7, h1, 72*time.Minute)),
			syncs:    map[string]string{hlt: "hlt", prompt: "hlt"}, // the run's own IOV of prompt says pcl
			workflow: "SiStripGains", want: pcl.StateHarvested, reason: "landed at since 392687"},
		{name: "a failed upload to an hlt tag does not gate, and the reason says so",
			obs:      gains(fail(hlt, 70*time.Minute), iov(prompt, testRun, h1, 72*time.Minute), iov(hlt, testRun-3, h3, time.Minute)),
			workflow: "SiStripGains", want: pcl.StateInDB, reason: "the upload to " + hlt + ", which does not gate PromptReco, says fail"},
		{name: "a skipped upload to the gating tag leaves the hlt tag to wait for",
			obs:      gains(upload(gainsIn, prompt, pcl.UploadSkip, 70*time.Minute), iov(hlt, testRun+2, h2, 71*time.Minute), iov(prompt, testRun-1, h3, time.Minute)),
			workflow: "SiStripGains", want: pcl.StateUploading},
		{name: "a skipped upload to the gating tag, the hlt tag delivered",
			obs:      gains(upload(gainsIn, prompt, pcl.UploadSkip, 70*time.Minute), iov(hlt, testRun+2, h1, 71*time.Minute), iov(prompt, testRun-1, h3, time.Minute)),
			workflow: "SiStripGains", want: pcl.StateInDB, reason: deliveredReason},
		{name: "a workflow whose only tag is hlt: delivered wherever it landed",
			obs:      concat(one(stopped(), harvest("SiStripBadStrip_pcl", time.Hour, h1), iov(quality, testRun+3, h1, 71*time.Minute)), collisionsConfig()),
			workflow: "SiStripQuality", want: pcl.StateInDB, reason: deliveredReason},
		{name: "a workflow whose only tag is hlt: its upload failed, a later run's identical payload is there",
			obs: concat(one(stopped(), harvest("SiStripBadStrip_pcl", time.Hour, h1), upload("SiStripBadStrip_pcl", quality, pcl.UploadFail, 70*time.Minute),
				iov(quality, testRun+3, h1, 5*time.Hour)), collisionsConfig()),
			workflow: "SiStripQuality", want: pcl.StateUploadFailed},
		{name: "a workflow whose only tag is hlt: not delivered",
			obs:      concat(one(stopped(), harvest("SiStripBadStrip_pcl", time.Hour, h1), iov(quality, testRun+3, h2, 71*time.Minute)), collisionsConfig()),
			workflow: "SiStripQuality", want: pcl.StateHarvested},
		{name: "a tag of unknown synchronization gates",
			obs:      concat(one(stopped(), harvest("SiStripBadStrip_pcl", time.Hour, h1), iovSync(quality, "", testRun+3, h1, 71*time.Minute), upload("SiStripBadStrip_pcl", quality, pcl.UploadOK, 70*time.Minute)), collisionsConfig()),
			workflow: "SiStripQuality", want: pcl.StateUploaded, reason: "landed at since 392683 (run 392683)"},
		{name: "a tag of unknown synchronization gates: at the run's since it counts",
			obs:      concat(one(stopped(), harvest("SiStripBadStrip_pcl", time.Hour, h1), iovSync(quality, "", testRun, h1, 71*time.Minute)), collisionsConfig()),
			workflow: "SiStripQuality", want: pcl.StateInDB, reason: inDBReason},
		{name: "the newest IOV that names the synchronization says it",
			obs: concat(one(stopped(), harvest("SiStripBadStrip_pcl", time.Hour, h1), iovSync(quality, "pcl", testRun-2, h3, -time.Hour),
				iovSync(quality, "hlt", testRun+3, h1, 71*time.Minute), iovSync(quality, "", testRun+4, h2, 80*time.Minute)), collisionsConfig()),
			workflow: "SiStripQuality", want: pcl.StateInDB, reason: deliveredReason},
		{name: "a failed upload to a tag of unknown synchronization says why it counts",
			obs:      concat(one(stopped(), harvest("SiStripBadStrip_pcl", time.Hour, h1), upload("SiStripBadStrip_pcl", quality, pcl.UploadFail, 70*time.Minute)), collisionsConfig()),
			workflow: "SiStripQuality", want: pcl.StateUploadFailed, reason: "its synchronization is unknown, so it counts as gating"},
		{name: "the catalogue says an hlt tag gates",
			obs: gains(iov(hlt, testRun+7, h1, 71*time.Minute), iov(prompt, testRun, h1, 72*time.Minute), ok(hlt, 70*time.Minute), ok(prompt, 70*time.Minute)),
			cat: withGates(gainsIn, map[string]bool{hlt: true}), workflow: "SiStripGains", want: pcl.StateUploaded,
			reason: "not yet in " + hlt + " (" + hlt + ": the run's payload landed at since 392687 (run 392687)"},
		{name: "the catalogue says a pcl tag does not gate",
			obs: gains(iov(hlt, testRun+7, h1, 71*time.Minute), iov(prompt, testRun+7, h1, 72*time.Minute)),
			cat: withGates(gainsIn, map[string]bool{prompt: false}), workflow: "SiStripGains", want: pcl.StateInDB, reason: deliveredReason},
		{name: "the catalogue's word beats an unknown synchronization",
			obs: concat(one(stopped(), harvest("SiStripBadStrip_pcl", time.Hour, h1), iovSync(quality, "", testRun+3, h1, 71*time.Minute)), collisionsConfig()),
			cat: withGates("SiStripBadStrip_pcl", map[string]bool{quality: false}), workflow: "SiStripQuality", want: pcl.StateInDB},
		{name: "lumi-typed: the IOVs at every harvested since of the run carry its payloads",
			obs: concat(one(stopped(), harvest(bsIn, time.Hour, h1, h2), iov(bsTag, pcl.PackLumi(testRun, 1), h1, 71*time.Minute),
				iov(bsTag, pcl.PackLumi(testRun, 11), h2, 71*time.Minute)), collisionsConfig()),
			workflow: "BeamSpotHP", want: pcl.StateInDB},
		{name: "lumi-typed: one harvested since without its IOV",
			obs: concat(one(stopped(), harvest(bsIn, time.Hour, h1, h2), iov(bsTag, pcl.PackLumi(testRun, 1), h1, 71*time.Minute),
				upload(bsIn, bsTag, pcl.UploadOK, 70*time.Minute)), collisionsConfig()),
			workflow: "BeamSpotHP", want: pcl.StateUploaded},
		{name: "lumi-typed: a newer insertion at a harvested since with another payload",
			obs: concat(one(stopped(), harvest(bsIn, time.Hour, h1, h2), iov(bsTag, pcl.PackLumi(testRun, 1), h1, 71*time.Minute),
				iov(bsTag, pcl.PackLumi(testRun, 11), h2, 71*time.Minute), iov(bsTag, pcl.PackLumi(testRun, 11), h3, 90*time.Minute),
				upload(bsIn, bsTag, pcl.UploadOK, 70*time.Minute)), collisionsConfig()),
			workflow: "BeamSpotHP", want: pcl.StateUploaded, reason: "carries payload " + h3[:12]},
		{name: "lumi-typed: the payloads only in the next run",
			obs: concat(one(stopped(), harvest(bsIn, time.Hour, h1, h2), iov(bsTag, pcl.PackLumi(testRun+1, 1), h1, 71*time.Minute),
				iov(bsTag, pcl.PackLumi(testRun+1, 11), h2, 71*time.Minute), upload(bsIn, bsTag, pcl.UploadOK, 70*time.Minute)), collisionsConfig()),
			workflow: "BeamSpotHP", want: pcl.StateUploaded, reason: "landed at since " + strconv.FormatUint(pcl.PackLumi(testRun+1, 1), 10) + " (run 392681, lumisection 1), since "},
		{name: "no hashes: a run-typed since equal to the run counts",
			obs:      concat(one(stopped(), harvest(gainsIn, time.Hour), iov(hlt, testRun, h1, 71*time.Minute), iov(prompt, testRun, h1, 71*time.Minute)), collisionsConfig()),
			workflow: "SiStripGains", want: pcl.StateInDB},
		{name: "no hashes: a since of a later run does not",
			obs:      concat(one(stopped(), harvest(gainsIn, time.Hour), iov(hlt, testRun, h1, 71*time.Minute), iov(prompt, testRun+1, h1, 71*time.Minute)), collisionsConfig()),
			workflow: "SiStripGains", want: pcl.StateHarvested},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cat := tc.cat
			if cat == nil {
				cat = catalog
			}
			rs := Reconcile(Input{Run: testRun, Observations: tc.obs, Catalogue: cat, Policy: pcl.DefaultPolicy(), Now: at(2 * time.Hour),
				Synchronizations: tc.syncs})
			ws, _ := rs.Workflow(tc.workflow)
			if ws.State != tc.want || !strings.Contains(ws.Reason, tc.reason) {
				t.Fatalf("%s: %s (%s), want %s with %q", tc.workflow, ws.State, ws.Reason, tc.want, tc.reason)
			}
		})
	}
}

// withSeqs numbers observations as a store would: each fact once, in order.
func withSeqs(obs []pcl.Observation) []pcl.Observation {
	out := slices.Clone(obs)
	for i := range out {
		out[i].Seq = int64(i + 1)
	}
	return out
}

// TestEvidence: a state and a decision cite the observations they rest on by their store sequence
// numbers, sorted, each once.
func TestEvidence(t *testing.T) {
	t.Parallel()
	const prompt = "SiStripApvGain_PCL_v0_prompt"
	find := func(obs []pcl.Observation, kind pcl.Kind, match func(o pcl.Observation) bool) int64 {
		t.Helper()
		for _, o := range obs {
			if o.Kind == kind && (match == nil || match(o)) {
				return o.Seq
			}
		}
		t.Fatalf("no %s observation", kind)
		return 0
	}
	tag := func(name string) func(o pcl.Observation) bool {
		return func(o pcl.Observation) bool { return o.Tag == name }
	}
	reconcile := func(obs []pcl.Observation, now time.Duration, p pcl.Policy) pcl.RunState {
		return Reconcile(Input{Run: testRun, Observations: obs, Catalogue: catalog, Policy: p, Sources: freshSources(now), Now: at(now)})
	}
	gains := onlyGains(pcl.OnTimeoutRelease)

	// In the DB: the IOV in effect in the one gating tag; the decision cites the same.
	obs := withSeqs(concat(one(stopped()), gainsInDB(h1), collisionsConfig()))
	rs := reconcile(obs, 2*time.Hour, gains)
	ws, _ := rs.Workflow("SiStripGains")
	if want := []int64{find(obs, pcl.KindIOV, tag(prompt))}; !slices.Equal(ws.Evidence, want) || !slices.Equal(rs.Decision.Evidence, want) {
		t.Errorf("in-db evidence %v, decision %v, want %v", ws.Evidence, rs.Decision.Evidence, want)
	}
	// Not expected: the express configurations, none of which runs it.
	la, _ := rs.Workflow("SiStripLA")
	if want := []int64{find(obs, pcl.KindExpressConfig, nil), find(obs, pcl.KindExpressConfig, func(o pcl.Observation) bool { return o.Stream == "ExpressAlignment" })}; !slices.Equal(la.Evidence, want) {
		t.Errorf("not-expected evidence %v, want %v", la.Evidence, want)
	}
	// Failed: the verdict; blocked: the same; accepted: the accept, and the run is ready on it.
	obs = withSeqs(concat(one(stopped(), harvest("SiStripApvGain_pcl", time.Hour, h1), upload("SiStripApvGain_pcl", prompt, pcl.UploadFail, 70*time.Minute),
		iov("SiStripApvGain_PCL_v0_hlt", testRun, h1, 71*time.Minute)), collisionsConfig()))
	rs = reconcile(obs, 3*time.Hour, gains)
	ws, _ = rs.Workflow("SiStripGains")
	verdict := []int64{find(obs, pcl.KindUploadStatus, nil)}
	if rs.Decision.State != pcl.ReadinessBlocked || !slices.Equal(ws.Evidence, verdict) || !slices.Equal(rs.Decision.Evidence, verdict) {
		t.Errorf("failed: %s evidence %v, decision %s %v, want %v", ws.State, ws.Evidence, rs.Decision.State, rs.Decision.Evidence, verdict)
	}
	obs = withSeqs(append(obs, override(pcl.OverrideAccept, "SiStripGains", 150*time.Minute)))
	rs = reconcile(obs, 3*time.Hour, gains)
	ws, _ = rs.Workflow("SiStripGains")
	accept := []int64{find(obs, pcl.KindOverride, nil)}
	if rs.Decision.State != pcl.ReadinessReady || !slices.Equal(ws.Evidence, accept) || !slices.Equal(rs.Decision.Evidence, accept) {
		t.Errorf("accepted: %s evidence %v, decision %s %v, want %v", ws.State, ws.Evidence, rs.Decision.State, rs.Decision.Evidence, accept)
	}
	// No payload: the stream's end (here only at the upload timeout, so unconfirmed). Held: the hold.
	// Released: the release. Timed out: the run's stop.
	obs = withSeqs(concat(one(stopped(), streamDone("Express", 19*time.Hour)), collisionsConfig()))
	rs = reconcile(obs, 20*time.Hour, gains)
	ws, _ = rs.Workflow("SiStripGains")
	if done := []int64{find(obs, pcl.KindStreamDone, nil)}; ws.State != pcl.StateNoPayload || !slices.Equal(ws.Evidence, done) {
		t.Errorf("no-payload evidence %v, want %v", ws.Evidence, done)
	}
	// A no-payload the DQM GUI confirms: the stream's end and the verdict, and the run is ready on both.
	confirmed := withSeqs(concat(obs, one(quality("SiStripGains", pcl.QualityInsufficient, 19*time.Hour+10*time.Minute))))
	rs = reconcile(confirmed, 20*time.Hour, gains)
	ws, _ = rs.Workflow("SiStripGains")
	want := []int64{find(confirmed, pcl.KindStreamDone, nil), find(confirmed, pcl.KindDQMQuality, nil)}
	if rs.Decision.State != pcl.ReadinessReady || !slices.Equal(ws.Evidence, want) || !slices.Equal(rs.Decision.Evidence, want) {
		t.Errorf("confirmed no-payload: %s evidence %v, decision %s %v, want %v", ws.State, ws.Evidence, rs.Decision.State, rs.Decision.Evidence, want)
	}
	for _, tc := range []struct {
		extra pcl.Observation
		now   time.Duration
		want  pcl.Readiness
		kind  pcl.Kind
	}{
		{override(pcl.OverrideHold, "", time.Hour), 20 * time.Hour, pcl.ReadinessHeld, pcl.KindOverride},
		{override(pcl.OverrideRelease, "", time.Hour), 20 * time.Hour, pcl.ReadinessForced, pcl.KindOverride},
		{release(time.Hour), 20 * time.Hour, pcl.ReadinessReleased, pcl.KindRelease},
		{quality("SiStripGains", pcl.QualityGood, time.Hour), 48 * time.Hour, pcl.ReadinessTimedOut, pcl.KindRun},
	} {
		o := withSeqs(concat(obs, one(tc.extra)))
		rs := reconcile(o, tc.now, gains)
		if want := []int64{find(o, tc.kind, nil)}; rs.Decision.State != tc.want || !slices.Equal(rs.Decision.Evidence, want) {
			t.Errorf("%s: evidence %v, want %v", rs.Decision.State, rs.Decision.Evidence, want)
		}
	}
	// Without sequence numbers (observations that did not come from a store) nothing is cited.
	rs = reconcile(concat(one(stopped()), gainsInDB(h1), collisionsConfig()), 2*time.Hour, gains)
	if ws, _ := rs.Workflow("SiStripGains"); ws.Evidence != nil || rs.Decision.Evidence != nil {
		t.Errorf("evidence without sequence numbers: %v, %v", ws.Evidence, rs.Decision.Evidence)
	}
}
