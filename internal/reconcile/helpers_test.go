package reconcile

import (
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// A test world: run 392680 of Collisions25, stopped at t0 after four hours.
const testRun = 392680

var (
	t0      = time.Date(2025, 5, 29, 12, 0, 0, 0, time.UTC)
	catalog = pcl.DefaultCatalogue()
)

func at(d time.Duration) time.Time { return t0.Add(d) }

func runObs(class string, stop *time.Time) pcl.Observation {
	fill := 10673
	info := &pcl.RunInfo{Start: t0.Add(-4 * time.Hour), Stop: stop, Class: class, Fill: &fill, BField: 3.8,
		Lumis: 900, Components: []string{"PIXEL", "TRACKER", "ECAL", "CTPPS"}}
	upd := t0.Add(-4 * time.Hour)
	if stop != nil {
		upd = *stop
	}
	info.LastUpdate = upd
	return pcl.Observation{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: testRun, At: upd, RunInfo: info}
}

func stopped() pcl.Observation { s := t0; return runObs("Collisions25", &s) }

func expressConfig(stream string, producers ...string) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: testRun, At: at(-4 * time.Hour),
		Stream: stream, Producers: producers}
}

// collisionsConfig is the express configuration of a Collisions run: every Express-stream producer.
func collisionsConfig() []pcl.Observation {
	var express []string
	for _, w := range catalog.Workflows() {
		if w.RunsIn("Express") {
			express = append(express, w.Producer)
		}
	}
	return []pcl.Observation{
		expressConfig("Express", express...),
		expressConfig("ExpressAlignment", "PromptCalibProdBeamSpotHP"),
	}
}

func streamDone(stream string, d time.Duration) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindStreamDone, Run: testRun, At: at(d), Seen: at(d),
		Stream: stream, Done: true}
}

func fileName(tag string) string {
	return "Run392680@" + tag + "@0b1d6e5a-1111-2222-3333-444455556666.db"
}

func harvest(tag string, d time.Duration, hashes ...string) pcl.Observation {
	w, in, _ := catalog.ByInputTag(tag)
	o := pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: testRun, At: at(d), Seen: at(d),
		Workflow: w.Name, InputTag: tag, File: fileName(tag), Destinations: in.Destinations}
	for i, h := range hashes {
		since := uint64(testRun)
		if in.TimeType == pcl.TimeLumi {
			since = pcl.PackLumi(testRun, uint32(1+i*10))
		}
		o.Payloads = append(o.Payloads, pcl.IOV{Since: since, Payload: h})
	}
	return o
}

func marker(tag string, d time.Duration) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindUploadMarker, Run: testRun, At: at(d),
		InputTag: tag, File: strings.TrimSuffix(fileName(tag), ".db") + ".txt.uploaded"}
}

func upload(tag, dest string, st pcl.UploadStatus, d time.Duration) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: testRun, At: at(d),
		InputTag: tag, File: fileName(tag), FileHash: "9f3c0d1e2a", Tag: dest, Status: st, Info: "log text"}
}

// iov is an IOV row as the conddb spy reports it, with the synchronization the simulator gives the tag.
func iov(tag string, since uint64, hash string, d time.Duration) pcl.Observation {
	return iovSync(tag, syncOf(tag), since, hash, d)
}

func iovSync(tag, sync string, since uint64, hash string, d time.Duration) pcl.Observation {
	tt, _ := catalog.TimeTypeOf(tag)
	return pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: pcl.RunOfSince(tt, since), At: at(d),
		Tag: tag, Since: since, TimeType: tt, Inserted: at(d), Payload: hash, Synchronization: sync}
}

// syncOf is the synchronization of a destination tag by its name, as the simulator (and, for the
// catalogue's tags, the condition DB) has it: _hlt and _express tags of those kinds, _off tags offline,
// the other PCL tags pcl.
func syncOf(tag string) string {
	switch {
	case strings.HasSuffix(tag, "_off"):
		return "offline"
	case strings.HasSuffix(tag, "_hlt"):
		return "hlt"
	case strings.HasSuffix(tag, "_express"):
		return "express"
	}
	return "pcl"
}

func override(action pcl.OverrideAction, workflow string, d time.Duration) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceOperator, Kind: pcl.KindOverride, Run: testRun, At: at(d),
		Action: action, Workflow: workflow, Actor: "shifter", Reason: "checked by hand"}
}

func release(d time.Duration) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindRelease, Run: testRun, At: at(d), Dataset: "JetMET0"}
}

func quality(workflow string, q pcl.Quality, d time.Duration) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceDQM, Kind: pcl.KindDQMQuality, Run: testRun, At: at(d), Workflow: workflow,
		Dataset: "/StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT", Quality: q}
}

// freshSources says every source was polled successfully at d.
func freshSources(d time.Duration) map[pcl.Source]SourceView {
	m := map[pcl.Source]SourceView{}
	for _, s := range pcl.Sources {
		m[s] = SourceView{View: at(d)}
	}
	return m
}

func concat(groups ...[]pcl.Observation) []pcl.Observation {
	var out []pcl.Observation
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func one(o ...pcl.Observation) []pcl.Observation { return o }

// gainsInDB is SiStripGains fully through the loop: harvested, sent, uploaded, in both destination tags.
func gainsInDB(hash string) []pcl.Observation {
	return one(harvest("SiStripApvGain_pcl", time.Hour, hash), marker("SiStripApvGain_pcl", 61*time.Minute),
		upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", pcl.UploadOK, 70*time.Minute),
		upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", pcl.UploadOK, 70*time.Minute),
		iov("SiStripApvGain_PCL_v0_hlt", testRun, hash, 71*time.Minute),
		iov("SiStripApvGain_PCL_v0_prompt", testRun, hash, 72*time.Minute))
}
