package pcl

import (
	"encoding/hex"
	"testing"
	"time"
)

// keyCases has one observation of every kind, with the fields each kind's key reads.
func keyCases() []Observation {
	at := time.Date(2025, 6, 14, 8, 30, 15, 123456789, time.UTC)
	stop := at.Add(47 * time.Minute)
	fill := 10742
	return []Observation{
		{Source: SourceOMS, Kind: KindRun, Run: 392001, At: at, RunInfo: &RunInfo{Start: at.Add(-time.Hour), Stop: &stop,
			Class: "Collisions25", Fill: &fill, Lumis: 1234, LastUpdate: stop.Add(time.Minute)}},
		{Source: SourceOMS, Kind: KindRun, Run: 392002, At: at, RunInfo: &RunInfo{Start: at, Class: "Cosmics25"}},
		{Source: SourceTier0, Kind: KindExpressConfig, Run: 392001, At: at, Stream: "Express",
			Producers: []string{"PromptCalibProd", "PromptCalibProdSiStripGains"}},
		{Source: SourceTier0, Kind: KindStreamDone, Run: 392001, At: at, Stream: "Express", Done: true},
		{Source: SourceTier0, Kind: KindStreamDone, Run: 392001, At: at, Stream: "Express"},
		{Source: SourceTier0, Kind: KindFCSR, Run: 392003, At: at},
		{Source: SourceTier0, Kind: KindRelease, Run: 392001, At: at, Dataset: "ZeroBias"},
		{Source: SourceHarvest, Kind: KindHarvestFile, Run: 392001, At: at, File: "Run392001@SiStripApvGain_pcl@3f9c.db", Prep: true},
		{Source: SourceDropbox, Kind: KindUploadMarker, Run: 392001, At: at, File: "Run392001@SiStripApvGain_pcl@3f9c.db"},
		{Source: SourceDropbox, Kind: KindUploadStatus, Run: 392001, At: at, FileHash: "5f0b2d6e", File: "Run392001@x.db",
			Tag: "SiStripApvGain_PCL_v0_prompt", Status: UploadOK},
		{Source: SourceCondDB, Kind: KindIOV, Run: 392001, At: at, Tag: "BeamSpotObjects_PCL_byLumi_v0_prompt",
			Since: 392001<<32 | 17, Inserted: at, Payload: "d1e5c0ffee", Synchronization: "pcl"},
		{Source: SourceDQM, Kind: KindDQMQuality, Run: 392001, At: at, Workflow: "SiStripGains", Dataset: "/StreamExpress/x/ALCAPROMPT", Quality: QualityGood},
		{Source: SourceOperator, Kind: KindOverride, Run: 392001, At: at, Action: OverrideHold, Workflow: "SiPixelAli", Actor: "alice", Reason: "looks odd"},
	}
}

// TestKeyIsStable pins the keys of one observation of every kind. Stores keep keys on disk, so a change
// to what a key hashes would let a restarted agency store every known fact a second time. (The DQM
// verdict's key took in its time when the spy began sending verdicts only when they change: after that
// upgrade each open run's current verdicts are stored once more, at a later time, which changes no state.)
func TestKeyIsStable(t *testing.T) {
	want := []string{
		"74b2f95105a6b92a97a740d56de98d44",
		"a365a273108d1066653ec4586e60d4d7",
		"53682fb1e32d2e543d49dedef8339914",
		"7b7e36fd1b632549335d64a68f1a1833",
		"808ca653722fff7d54d9c0e763a3b903",
		"1512f5b8c0e36bc9efb371a5ccb0a630",
		"adc42b7068f452d6449fad20047649f9",
		"f9ab7b4adcbe436177e4303829564626",
		"a130716f0eb4e61ec0712c9ac0f6a728",
		"a14f5d6935eca328a70a4e43d306c9cd",
		"804640cf846534d7dd26646c2a485d7a",
		"0db755da92551dd29a8442e33497d2b5",
		"1624ce3b5e83c13dbee115f810613507",
	}
	cases := keyCases()
	if len(want) != len(cases) {
		t.Fatalf("%d keys pinned for %d cases", len(want), len(cases))
	}
	for i := range cases {
		o := &cases[i]
		if got := o.Key(); got != want[i] {
			t.Errorf("case %d (%s): key %s, want %s", i, o.Kind, got, want[i])
		}
		sum := o.KeySum()
		if got := hex.EncodeToString(sum[:]); got != want[i] {
			t.Errorf("case %d (%s): KeySum %s, want %s", i, o.Kind, got, want[i])
		}
	}
}
