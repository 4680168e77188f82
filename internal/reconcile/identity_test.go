package reconcile

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// compare must tell apart any two observations that are different facts, or sorting a run's
// observations would depend on the order they came in. internal/pcl's identity_test.go checks the key,
// validation and JSON of every field; this checks compare the same way: a field added to
// pcl.Observation, RunInfo or IOV fails here until compare reads it or notCompared says why not.

// notCompared are the fields compare leaves out, each for a reason. None of them is in a key (the test
// checks that too), so two observations they alone tell apart are one fact.
var notCompared = map[string]string{
	"Seen":     "when the spy saw the fact, not the fact",
	"Seq":      "the store's number for the fact, not the fact",
	"TimeType": "the tag's, fixed when the tag is made: the tag is compared",
	// OMS bumps last_update, which is compared, whenever it changes a run's attributes.
	"RunInfo.Fill": "as last_update", "RunInfo.Era": "as last_update", "RunInfo.Sequence": "as last_update",
	"RunInfo.HLTKey": "as last_update", "RunInfo.FillType": "as last_update", "RunInfo.StableBeam": "as last_update",
	"Payloads.Inserted": "a harvest file's IOVs are the file's: its name (with a fresh UUID) is compared",
}

// compareBase is an observation in which the field at path is read by compare: a run for its RunInfo, a
// harvest file for its destinations and payloads, and for every other field an observation with all
// of them set (compare reads those whatever the kind).
func compareBase(path string) pcl.Observation {
	at := time.Date(2025, 6, 14, 8, 30, 15, 0, time.UTC)
	stop, fill := at.Add(47*time.Minute), 10742
	switch {
	case strings.HasPrefix(path, "RunInfo."):
		return pcl.Observation{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392001, At: at, RunInfo: &pcl.RunInfo{
			Start: at.Add(-time.Hour), Stop: &stop, Class: "Collisions25", Fill: &fill, BField: 3.8, Lumis: 1234,
			Era: "Run2025C", Sequence: "GLOBAL-RUN", HLTKey: "/cdaq/physics/Run2025/v1.1.3/HLT/V2", FillType: "PROTONS",
			StableBeam: true, Components: []string{"TRACKER"}, LastUpdate: stop}}
	case path == "Destinations", strings.HasPrefix(path, "Payloads"):
		return pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: 392001, At: at,
			Workflow: "SiStripGains", InputTag: "SiStripApvGain_pcl", File: "Run392001@SiStripApvGain_pcl@3f9c.db",
			Destinations: []string{"SiStripApvGain_PCL_v0_prompt"}, Payloads: []pcl.IOV{{Since: 392001, Payload: "aa", Inserted: at}}}
	}
	return pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: 392001, At: at, Seen: at, Seq: 3,
		Stream: "Express", Done: true, Producers: []string{"PromptCalibProd"}, Dataset: "ZeroBias", Workflow: "SiStripGains",
		InputTag: "SiStripApvGain_pcl", File: "Run392001@SiStripApvGain_pcl@3f9c.db", FileHash: "bb", Prep: true,
		Tag: "SiStripApvGain_PCL_v0_prompt", Status: pcl.UploadOK, Info: "ok", Since: 392001, TimeType: pcl.TimeRun,
		Inserted: at, Payload: "aa", Previous: "cc", Synchronization: "pcl", Quality: pcl.QualityGood,
		Action: pcl.OverrideHold, Actor: "alice", Reason: "why"}
}

// observationPaths are every field path of the three structs: RunInfo.X, Payloads and Payloads.X (its
// first IOV).
func observationPaths() []string {
	var out []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			switch name := prefix + f.Name; f.Type {
			case reflect.TypeFor[*pcl.RunInfo]():
				walk(name+".", f.Type.Elem())
			case reflect.TypeFor[[]pcl.IOV]():
				out = append(out, name)
				walk(name+".", f.Type.Elem())
			default:
				out = append(out, name)
			}
		}
	}
	walk("", reflect.TypeFor[pcl.Observation]())
	return out
}

// changeField makes the field at path different; a type it does not know fails the test.
func changeField(t *testing.T, o *pcl.Observation, path string) {
	t.Helper()
	v := reflect.ValueOf(o).Elem()
	for _, name := range strings.Split(path, ".") {
		switch v.Kind() {
		case reflect.Pointer:
			v = v.Elem()
		case reflect.Slice:
			v = v.Index(0)
		}
		if v = v.FieldByName(name); !v.IsValid() {
			t.Fatalf("no field %s", path)
		}
	}
	switch x := v.Addr().Interface().(type) {
	case *time.Time:
		*x = x.Add(time.Second)
	case **time.Time:
		next := (*x).Add(time.Second)
		*x = &next
	case **int:
		n := **x + 1
		*x = &n
	case *[]string:
		*x = append(slices.Clone(*x), "changed")
	case *[]pcl.IOV:
		*x = append(slices.Clone(*x), pcl.IOV{Since: 392002, Payload: "dd"})
	default:
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "-changed")
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Uint32, reflect.Uint64:
			v.SetUint(v.Uint() + 1)
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 1)
		case reflect.Float64:
			v.SetFloat(v.Float() + 0.5)
		default:
			t.Fatalf("%s: no rule to change a %s", path, v.Type())
		}
	}
}

func TestIdentityCompare(t *testing.T) {
	t.Parallel()
	all := observationPaths()
	for f := range notCompared {
		if !slices.Contains(all, f) {
			t.Errorf("notCompared names %s, which is not a field", f)
		}
	}
	for _, f := range all {
		base := compareBase(f)
		if c := compare(&base, &base); c != 0 {
			t.Fatalf("compare of an observation with itself = %d", c)
		}
		o := compareBase(f)
		changeField(t, &o, f)
		why, out := notCompared[f]
		c, back := compare(&base, &o), compare(&o, &base)
		switch {
		case c == 0 && !out:
			t.Errorf("changing %s leaves compare at 0: read it in compare, or say in notCompared why not", f)
		case c != 0 && out:
			t.Errorf("changing %s changes compare, but notCompared says it is left out (%s)", f, why)
		case c != -back:
			t.Errorf("changing %s: compare is not antisymmetric (%d, %d)", f, c, back)
		}
		if out && o.KeySum() != base.KeySum() {
			t.Errorf("%s is in the key of a %s but compare leaves it out: two facts would sort as one", f, o.Kind)
		}
	}
}
