package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The fixtures follow a few 2025 pp runs through the loop, with the names the real systems use: OMS runs
// and classes, the Express stream, harvest files Run<run>@<inputTag>@<uuid>.db, the prompt destination
// tags of cms-interfaces.md §5, SHA-1 payload hashes.

// epoch is the start of the first fixture run.
func epoch() time.Time { return time.Date(2025, time.June, 14, 8, 12, 41, 0, time.UTC) }

// fixtureRuns are consecutive runs of one fill; the suite varies everything that makes a Key.
func fixtureRuns() []uint32 { return []uint32{392669, 392670, 392671, 392672, 392673} }

// payloadHash makes a stable 40-hex SHA-1-like hash for a run and tag.
func payloadHash(run uint32, tag string) string {
	h := fmt.Sprintf("%08x", run)
	for _, c := range tag {
		h += fmt.Sprintf("%x", c%16)
	}
	for len(h) < 40 {
		h += h
	}
	return h[:40]
}

func runStart(i int) time.Time { return epoch().Add(time.Duration(i) * 47 * time.Minute) }

// runObs is OMS's report of a run; a non-zero stop means the run ended.
func runObs(run uint32, start, stop time.Time, class string, lumis int) pcl.Observation {
	info := &pcl.RunInfo{Start: start, Class: class, BField: 3.8, Lumis: lumis, Era: "Run2025C",
		Sequence: "GLOBAL-RUN", HLTKey: "/cdaq/physics/Run2025/2e34/v1.1.3/HLT/V2", FillType: "PROTONS",
		StableBeam: true, Components: []string{"TRACKER", "ECAL", "HCAL", "DT", "CSC", "RPC", "GEM"},
		LastUpdate: start.Add(time.Minute)}
	fill := 10732
	info.Fill = &fill
	at := start
	if !stop.IsZero() {
		info.Stop = &stop
		info.LastUpdate = stop.Add(2 * time.Minute)
		at = stop
	}
	return pcl.Observation{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: run, At: at,
		Seen: info.LastUpdate.Add(30 * time.Second), RunInfo: info}
}

func expressConfig(run uint32, at time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: run, At: at,
		Seen: at.Add(40 * time.Second), Stream: "Express",
		Producers: []string{"PromptCalibProdSiStrip", "PromptCalibProdSiStripGains", "PromptCalibProdSiPixelAli"}}
}

func streamDone(run uint32, at time.Time, done bool) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindStreamDone, Run: run, At: at,
		Seen: at.Add(55 * time.Second), Stream: "Express", Done: done}
}

func harvestFile(run uint32, workflow, inputTag, uuid string, at time.Time, dests ...string) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: run, At: at,
		Seen: at.Add(75 * time.Second), Workflow: workflow, InputTag: inputTag,
		File:         fmt.Sprintf("Run%d@%s@%s.db", run, inputTag, uuid),
		Destinations: dests,
		Payloads:     []pcl.IOV{{Since: uint64(run), Payload: payloadHash(run, inputTag)}}}
}

func uploadMarker(h pcl.Observation, at time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindUploadMarker, Run: h.Run, At: at,
		Seen: at.Add(20 * time.Second), Workflow: h.Workflow, InputTag: h.InputTag, File: h.File}
}

func uploadStatus(h pcl.Observation, tag string, st pcl.UploadStatus, at time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: h.Run, At: at,
		Seen: at.Add(90 * time.Second), Workflow: h.Workflow, InputTag: h.InputTag, File: h.File,
		FileHash: payloadHash(h.Run, h.File), Tag: tag, Status: st, Info: "Upload of " + h.File + " to " + tag}
}

func iovObs(run uint32, tag, payload string, inserted time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: run, At: inserted,
		Seen: inserted.Add(2 * time.Minute), Tag: tag, Since: uint64(run), TimeType: pcl.TimeRun,
		Inserted: inserted, Payload: payload, Previous: payloadHash(run-1, tag)}
}

func dqmObs(run uint32, workflow string, q pcl.Quality, at time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceDQM, Kind: pcl.KindDQMQuality, Run: run, At: at,
		Seen: at.Add(3 * time.Minute), Workflow: workflow, Quality: q,
		Dataset: "/StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT"}
}

func overrideObs(run uint32, action pcl.OverrideAction, actor, reason string, at time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceOperator, Kind: pcl.KindOverride, Run: run, At: at, Seen: at,
		Action: action, Actor: actor, Reason: reason}
}

// loopOf is the observations of one run going through the loop: OMS, Tier-0, harvest, upload, CondDB,
// DQM. i staggers the runs in time.
func loopOf(i int, run uint32) []pcl.Observation {
	start := runStart(i)
	stop := start.Add(42 * time.Minute)
	gains := harvestFile(run, "SiStripGains", "SiStripApvGain_pcl", fmt.Sprintf("3f9c%04d-1b2a-4c3d-9e8f-%012d", i, run),
		stop.Add(38*time.Minute), "SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt")
	ali := harvestFile(run, "SiPixelAli", "SiPixelAli_pcl", fmt.Sprintf("a71e%04d-55d0-4f11-8c2b-%012d", i, run),
		stop.Add(51*time.Minute), "SiPixelAli_PCL_v0_hlt_off")
	return []pcl.Observation{
		runObs(run, start, time.Time{}, "Collisions25", 0),
		runObs(run, start, stop, "Collisions25", 1012+i),
		expressConfig(run, start.Add(3*time.Minute)),
		streamDone(run, stop.Add(20*time.Minute), false),
		streamDone(run, stop.Add(36*time.Minute), true),
		gains,
		ali,
		uploadMarker(gains, stop.Add(40*time.Minute)),
		uploadStatus(gains, "SiStripApvGain_PCL_v0_hlt", pcl.UploadOK, stop.Add(43*time.Minute)),
		uploadStatus(gains, "SiStripApvGain_PCL_v0_prompt", pcl.UploadOK, stop.Add(43*time.Minute)),
		iovObs(run, "SiStripApvGain_PCL_v0_hlt", payloadHash(run, "SiStripApvGain_pcl"), stop.Add(44*time.Minute)),
		iovObs(run, "SiStripApvGain_PCL_v0_prompt", payloadHash(run, "SiStripApvGain_pcl"), stop.Add(44*time.Minute)),
		iovObs(run, "SiPixelAli_PCL_v0_hlt_off", payloadHash(run, "SiPixelAli_pcl"), stop.Add(58*time.Minute)),
		dqmObs(run, "SiStripGains", pcl.QualityGood, stop.Add(47*time.Minute)),
	}
}

// fixtureWorld is the loop of every fixture run, in the order the spies would see them per run.
func fixtureWorld() []pcl.Observation {
	var all []pcl.Observation
	for i, run := range fixtureRuns() {
		all = append(all, loopOf(i, run)...)
	}
	all = append(all, overrideObs(fixtureRuns()[2], pcl.OverrideHold, "jdoe", "SiPixelAli payload under review by the alignment conveners",
		runStart(2).Add(3*time.Hour)))
	return all
}

// manyObservations makes n distinct observations (IOVs of many runs and tags, with DQM results mixed in),
// realistic in size, for concurrency tests and benchmarks.
func manyObservations(n int, seed int) []pcl.Observation {
	tags := []string{"SiStripApvGain_PCL_v0_prompt", "SiStripApvGain_PCL_v0_hlt", "SiPixelAli_PCL_v0_hlt_off",
		"BeamSpotObjects_PCL_byLumi_v0_prompt", "SiPixelQuality_byPCL_prompt_v2", "LumiPCC_Corrections_prompt"}
	out := make([]pcl.Observation, n)
	for i := range n {
		run := 380000 + uint32((seed*n+i)/len(tags))
		tag := tags[i%len(tags)]
		at := epoch().Add(time.Duration(seed*n+i) * time.Second)
		if i%7 == 3 {
			out[i] = dqmObs(run, "SiStripGains", pcl.QualityWarning, at)
			continue
		}
		out[i] = iovObs(run, tag, payloadHash(run, tag), at)
	}
	return out
}

// keys lists the observations' keys in order.
func keys(obs []pcl.Observation) []string {
	out := make([]string, len(obs))
	for i := range obs {
		out[i] = obs[i].Key()
	}
	return out
}

// sameJSON fails unless want and got encode to the same JSON: the stored form must round-trip exactly.
func sameJSON(t *testing.T, what string, want, got any) {
	t.Helper()
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("%s: encode want: %v", what, err)
	}
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("%s: encode got: %v", what, err)
	}
	if string(w) != string(g) {
		t.Errorf("%s differs:\n want %s\n  got %s", what, w, g)
	}
}
