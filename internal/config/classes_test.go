package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/fixtures"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// omsFixture finds ../shared/fixtures/cms/oms/test_oms_runs.json next to the module root.
func omsFixture(t *testing.T) string {
	t.Helper()
	return fixtures.Path(t, "oms", "test_oms_runs.json")
}

// omsRuns reads the fixture's runs into pcl.RunInfo, with only the attributes the rules look at.
func omsRuns(t *testing.T) map[uint32]pcl.RunInfo {
	t.Helper()
	data, err := os.ReadFile(omsFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		Data []struct {
			Attributes struct {
				RunNumber  uint32    `json:"run_number"`
				StartTime  time.Time `json:"start_time"`
				Era        *string   `json:"era"`
				HLTKey     *string   `json:"hlt_key"`
				FillType   *string   `json:"fill_type_runtime"`
				Sequence   *string   `json:"sequence"`
				StableBeam *bool     `json:"stable_beam"`
				BField     *float64  `json:"b_field"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		t.Fatalf("decoding the OMS fixture: %v", err)
	}
	str := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	runs := map[uint32]pcl.RunInfo{}
	for _, d := range reply.Data {
		a := d.Attributes
		info := pcl.RunInfo{Start: a.StartTime, Era: str(a.Era), HLTKey: str(a.HLTKey), FillType: str(a.FillType), Sequence: str(a.Sequence)}
		if a.StableBeam != nil {
			info.StableBeam = *a.StableBeam
		}
		if a.BField != nil {
			info.BField = *a.BField
		}
		runs[a.RunNumber] = info
	}
	return runs
}

// TestClassRulesOnRealOMSRuns: the 15 runs of 29 May 2025, classified as the Run Registry would.
func TestClassRulesOnRealOMSRuns(t *testing.T) {
	t.Parallel()
	runs := omsRuns(t)
	want := map[uint32]string{
		392671: "Commissioning25", // circulating-beam menu
		392672: "Collisions25", 392673: "Collisions25", 392674: "Collisions25", 392675: "Collisions25", 392676: "Collisions25",
		392679: "Cosmics25", 392682: "Cosmics25", // cosmic menu between fills
		392690: "Collisions25",    // physics menu in a proton fill, before stable beams
		392692: "Commissioning25", // mini-DAQ run of TOTEM/CT-PPS, fill type COSMICS but no cosmic menu
		392697: "Commissioning25", 392699: "Commissioning25",
		392700: "Collisions25", 392701: "Collisions25", 392702: "Collisions25",
	}
	if len(runs) != len(want) {
		t.Fatalf("fixture has %d runs, the test knows %d", len(runs), len(want))
	}
	full, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Config{"default": Default(), "full.yaml": full} {
		for run, class := range want {
			info, ok := runs[run]
			if !ok {
				t.Fatalf("run %d not in the fixture", run)
			}
			if got := c.ClassOf(info); got != class {
				t.Errorf("%s: run %d (%s, %s, stable %v) is %q, want %q", name, run, info.HLTKey, info.FillType, info.StableBeam, got, class)
			}
		}
	}
}

func TestClassOf(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 11, 20, 10, 0, 0, 0, time.UTC)
	yes, no, threeT := true, false, 3.0
	for _, tc := range []struct {
		name  string
		rules []ClassRule
		info  pcl.RunInfo
		want  string
	}{
		{"lead fill, physics menu", nil,
			pcl.RunInfo{Start: start, HLTKey: "/cdaq/physics/Run2024HI/v1.0/HLT/V2", FillType: "PB", StableBeam: true}, "HI24"},
		{"proton-lead fill", nil,
			pcl.RunInfo{Start: start, HLTKey: "/cdaq/physics/Run2016pPb/HLT/V1", FillType: "PROTON_PB"}, "HI24"},
		{"cosmics during a lead fill", nil,
			pcl.RunInfo{Start: start, HLTKey: "/cdaq/cosmic/commissioning2024/v1/HLT/V1", FillType: "PB"}, "Cosmics24"},
		{"stable beams whatever the fill type", nil,
			pcl.RunInfo{Start: start, HLTKey: "/cdaq/physics/Run2024/v1/HLT/V1", FillType: "", StableBeam: true}, "Collisions24"},
		{"physics menu without beam", nil,
			pcl.RunInfo{Start: start, HLTKey: "/cdaq/physics/Run2024/v1/HLT/V1", FillType: "COSMICS"}, "Commissioning24"},
		{"no start, no year", nil, pcl.RunInfo{HLTKey: "/cdaq/cosmic/x"}, "Cosmics"},
		{"year appended without placeholder", []ClassRule{{Class: "Special"}}, pcl.RunInfo{Start: start}, "Special24"},
		{"four-digit year", []ClassRule{{Class: "Run{yyyy}-{yy}"}}, pcl.RunInfo{Start: start}, "Run2024-24"},
		{"year in UTC", []ClassRule{{Class: "C{yy}"}},
			pcl.RunInfo{Start: time.Date(2025, 1, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600))}, "C24"},
		{"stable_beam false required", []ClassRule{{Class: "NoBeam{yy}", StableBeam: &no}, {Class: "Beam{yy}"}},
			pcl.RunInfo{Start: start, StableBeam: true}, "Beam24"},
		{"stable_beam true required", []ClassRule{{Class: "Beam{yy}", StableBeam: &yes}},
			pcl.RunInfo{Start: start, StableBeam: true}, "Beam24"},
		{"B field below minimum", []ClassRule{{Class: "Full{yy}", MinBField: &threeT}, {Class: "Zero{yy}"}},
			pcl.RunInfo{Start: start, BField: 0.02}, "Zero24"},
		{"B field at minimum", []ClassRule{{Class: "Full{yy}", MinBField: &threeT}, {Class: "Zero{yy}"}},
			pcl.RunInfo{Start: start, BField: 3.0}, "Full24"},
		{"era and sequence", []ClassRule{{Class: "X{yy}", Era: "^Run2024[A-G]$", Sequence: "^GLOBAL-RUN$"}, {Class: "Y{yy}"}},
			pcl.RunInfo{Start: start, Era: "Run2024C", Sequence: "GLOBAL-RUN"}, "X24"},
		{"era mismatch", []ClassRule{{Class: "X{yy}", Era: "^Run2024[A-G]$"}, {Class: "Y{yy}"}},
			pcl.RunInfo{Start: start, Era: "Run2024H"}, "Y24"},
		{"bad regexp skipped", []ClassRule{{Class: "Bad", HLTKey: "("}, {Class: "Good{yy}"}}, pcl.RunInfo{Start: start}, "Good24"},
		{"nothing matches", []ClassRule{{Class: "X", HLTKey: "^/never"}}, pcl.RunInfo{Start: start}, ""},
	} {
		c := &Config{RunClasses: tc.rules}
		if got := c.ClassOf(tc.info); got != tc.want {
			t.Errorf("%s: ClassOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestDefaultClassesMatchDefaultPolicy: every class the default rules produce has its own policy
// class, not the catch-all, except Commissioning which the catch-all is for.
func TestDefaultClassesMatchDefaultPolicy(t *testing.T) {
	t.Parallel()
	p := pcl.DefaultPolicy()
	for _, r := range DefaultClassRules() {
		class := expandClass(r.Class, pcl.RunInfo{Start: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
		got := p.For(class).Pattern
		if (got == "*") != (class == "Commissioning25") {
			t.Errorf("class %s falls to policy pattern %q", class, got)
		}
	}
}

func TestClassifierReportsBadRules(t *testing.T) {
	t.Parallel()
	k, err := NewClassifier([]ClassRule{{Class: "Bad", Sequence: "(("}, {Class: "Good{yy}", Sequence: "^GLOBAL"}})
	if err == nil || !strings.Contains(err.Error(), "run class rule 0 (Bad)") {
		t.Errorf("NewClassifier error = %v, want rule 0 named", err)
	}
	info := pcl.RunInfo{Start: time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC), Sequence: "GLOBAL-RUN"}
	if got := k.ClassOf(info); got != "Good23" {
		t.Errorf("ClassOf = %q, want Good23 from the rule that compiled", got)
	}
}
