package pcl

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The identity of a stored fact is spread over several hand-written places: its key (KeySum, which the
// store deduplicates on), its validation (Validate), its JSON (AppendJSON, what the store keeps and
// probe prints) and the reconcile's order (internal/reconcile's compare, checked by its own
// identity_test.go). A field added to Observation, RunInfo or IOV and forgotten in one of them would
// show only in a golden file, if at all: a new fact stored as an old one, a field lost on the way
// through the store. These tests walk the structs' fields by reflection, so that a new field fails
// them until its author has said, in the tables below, which kinds carry it, whether it is part of
// the key and whether a kind requires it.

// common are the fields every kind carries.
var common = []string{"Source", "Kind", "Run", "At", "Seen", "Seq"}

// carries lists, per kind, the other fields its observations carry (the struct's comments say the same).
// RunInfo.X is a field of the run; Payloads is the list of a harvest file's IOVs and Payloads.X a field
// of its first one.
var carries = map[Kind][]string{
	KindRun: {"RunInfo.Start", "RunInfo.Stop", "RunInfo.Class", "RunInfo.Fill", "RunInfo.BField", "RunInfo.Lumis",
		"RunInfo.Era", "RunInfo.Sequence", "RunInfo.HLTKey", "RunInfo.FillType", "RunInfo.StableBeam",
		"RunInfo.Components", "RunInfo.LastUpdate"},
	KindExpressConfig: {"Stream", "Producers"},
	KindStreamDone:    {"Stream", "Done"},
	KindFCSR:          {},
	KindRelease:       {"Dataset"},
	KindHarvestFile: {"Workflow", "InputTag", "File", "Destinations", "Payloads", "Payloads.Since", "Payloads.Payload",
		"Payloads.Inserted", "Prep"},
	KindUploadMarker: {"Workflow", "InputTag", "File", "Prep"},
	KindUploadStatus: {"Workflow", "InputTag", "File", "FileHash", "Tag", "Status", "Info"},
	KindIOV:          {"Tag", "Since", "TimeType", "Inserted", "Payload", "Previous", "Synchronization"},
	KindDQMQuality:   {"Workflow", "Dataset", "Quality"},
	KindOverride:     {"Workflow", "Action", "Actor", "Reason"},
}

// notInKey are the fields a kind carries but its key leaves out, each for a reason. Every other field a
// kind carries must change the key when it changes; these must not (so the list stays true).
var notInKey = map[Kind]map[string]string{
	// For every kind.
	"": {
		"Seen": "when the spy saw the fact, not the fact: the same fact seen by two polls is one fact",
		"Seq":  "the store's number for the fact, given after its identity",
	},
	KindRun: {
		"At":           "derived from last_update (or the start), which the key holds",
		"RunInfo.Fill": "OMS bumps last_update, which is in the key, whenever it changes a run's attributes", "RunInfo.BField": "as Fill",
		"RunInfo.Era": "as Fill", "RunInfo.Sequence": "as Fill", "RunInfo.HLTKey": "as Fill", "RunInfo.FillType": "as Fill",
		"RunInfo.StableBeam": "as Fill", "RunInfo.Components": "as Fill",
	},
	KindExpressConfig: {"At": "a state Tier-0 reports at every poll: the poll's time would make each poll a new fact"},
	KindStreamDone:    {"At": "as for the express config"},
	KindFCSR:          {"At": "as for the express config"},
	KindRelease:       {"At": "as for the express config"},
	KindHarvestFile: {
		"At":       "the file's modification time: a file touched again is the same file",
		"Workflow": "follows from the input tag, which the file name carries", "InputTag": "in the file name, which the key holds",
		"Destinations": "read from the file the name names (its name has a fresh UUID)", "Payloads": "as Destinations",
		"Payloads.Since": "as Destinations", "Payloads.Payload": "as Destinations", "Payloads.Inserted": "as Destinations",
	},
	KindUploadMarker: {
		"At":       "the marker's modification time: as for the harvest file",
		"Workflow": "as for the harvest file", "InputTag": "as for the harvest file",
	},
	KindUploadStatus: {
		"Workflow": "follows from the input tag", "InputTag": "in the file name, which the key holds",
		"Info": "the log's free text, which may be reworded; the status and the time name the verdict",
	},
	KindIOV: {
		"At":       "the row's INSERTION_TIME, which the key holds as Inserted",
		"TimeType": "the tag's, fixed when the tag is made",
		"Previous": "read from the rows below at the time of reading; the row is the fact",
		// The synchronization is the tag's, not the row's: a row read again after its tag changed
		// synchronization is the same row, so the first reading stays (see KeySum).
		"Synchronization": "the tag's, not the row's",
	},
}

// required are the fields Validate refuses to be empty, per kind; every other field may be empty.
var required = map[Kind][]string{
	KindRun:           {"Source", "At", "Run", "RunInfo.Start"},
	KindExpressConfig: {"Source", "At", "Run", "Stream"},
	KindStreamDone:    {"Source", "At", "Run", "Stream"},
	KindFCSR:          {"Source", "At", "Run"},
	KindRelease:       {"Source", "At", "Run"},
	KindHarvestFile:   {"Source", "At", "Run", "InputTag", "File"},
	KindUploadMarker:  {"Source", "At", "Run", "InputTag", "File"},
	// The upload log names a file by its name or its hash; either will do, so neither alone is required.
	KindUploadStatus: {"Source", "At", "Tag", "Status"},
	// An IOV's run follows from its since, and run 0 is where since 0 (or 1) of a run-typed tag lands.
	KindIOV:        {"Source", "At", "Tag", "Payload", "Inserted"},
	KindDQMQuality: {"Source", "At", "Run", "Quality"},
	// Only an accept must name a workflow (see TestIdentityValidation); a clear may, to undo one.
	KindOverride: {"Source", "At", "Run", "Action", "Actor", "Reason"},
}

// notInJSON are the fields AppendJSON leaves out.
var notInJSON = map[string]string{"Seq": "the store's, not the fact's: a store gives it when it reads the fact back"}

// identityBase is an observation of kind k with every field k carries set, and valid.
func identityBase(k Kind) Observation {
	at := time.Date(2025, 6, 14, 8, 30, 15, 123456789, time.UTC)
	stop, fill := at.Add(47*time.Minute), 10742
	o := Observation{Source: SourceOMS, Kind: k, Run: 392001, At: at, Seen: at.Add(3 * time.Second), Seq: 17}
	switch k {
	case KindRun:
		o.RunInfo = &RunInfo{Start: at.Add(-time.Hour), Stop: &stop, Class: "Collisions25", Fill: &fill, BField: 3.8,
			Lumis: 1234, Era: "Run2025C", Sequence: "GLOBAL-RUN", HLTKey: "/cdaq/physics/Run2025/v1.1.3/HLT/V2",
			FillType: "PROTONS", StableBeam: true, Components: []string{"TRACKER", "ECAL"}, LastUpdate: stop.Add(time.Minute)}
	case KindExpressConfig:
		o.Source, o.Stream, o.Producers = SourceTier0, "Express", []string{"PromptCalibProd", "PromptCalibProdSiStripGains"}
	case KindStreamDone:
		o.Source, o.Stream, o.Done = SourceTier0, "Express", true
	case KindFCSR:
		o.Source = SourceTier0
	case KindRelease:
		o.Source, o.Dataset = SourceTier0, "ZeroBias"
	case KindHarvestFile:
		o.Source, o.Workflow, o.InputTag, o.File = SourceHarvest, "SiStripGains", "SiStripApvGain_pcl", "Run392001@SiStripApvGain_pcl@3f9c.db"
		o.Destinations = []string{"SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt"}
		o.Payloads, o.Prep = []IOV{{Since: 392001, Payload: strings.Repeat("a", 40), Inserted: at}}, true
	case KindUploadMarker:
		o.Source, o.Workflow, o.InputTag, o.File, o.Prep = SourceHarvest, "SiStripGains", "SiStripApvGain_pcl", "Run392001@SiStripApvGain_pcl@3f9c.db", true
	case KindUploadStatus:
		o.Source, o.Workflow, o.InputTag, o.File = SourceDropbox, "SiStripGains", "SiStripApvGain_pcl", "Run392001@SiStripApvGain_pcl@3f9c.db"
		o.FileHash, o.Tag, o.Status, o.Info = strings.Repeat("b", 40), "SiStripApvGain_PCL_v0_prompt", UploadOK, "appended 1 IOV"
	case KindIOV:
		o.Source, o.Tag, o.Since, o.TimeType, o.Inserted = SourceCondDB, "SiStripApvGain_PCL_v0_prompt", 392001, TimeRun, at
		o.Payload, o.Previous, o.Synchronization = strings.Repeat("a", 40), strings.Repeat("c", 40), "pcl"
	case KindDQMQuality:
		o.Source, o.Workflow, o.Dataset, o.Quality = SourceDQM, "SiStripGains", "/StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT", QualityGood
	case KindOverride:
		o.Source, o.Workflow, o.Action, o.Actor, o.Reason = SourceOperator, "SiStripGains", OverrideClear, "alice", "fit checked by hand"
	}
	return o
}

// field is the addressable value of a field path in o.
func field(t *testing.T, o *Observation, path string) reflect.Value {
	t.Helper()
	v := reflect.ValueOf(o).Elem()
	for _, name := range strings.Split(path, ".") {
		switch {
		case v.Kind() == reflect.Pointer:
			v = v.Elem()
		case v.Kind() == reflect.Slice:
			v = v.Index(0)
		}
		v = v.FieldByName(name)
		if !v.IsValid() {
			t.Fatalf("no field %s", path)
		}
	}
	return v
}

// change makes the field at path different, whatever its type; a type it does not know fails the test,
// so that a field of a new type gets a rule here.
func change(t *testing.T, o *Observation, path string) {
	t.Helper()
	v := field(t, o, path)
	switch x := v.Addr().Interface().(type) {
	case *time.Time:
		*x = x.Add(time.Second)
	case **time.Time:
		next := time.Date(2025, 6, 15, 0, 0, 0, 0, time.UTC)
		if *x != nil {
			next = (*x).Add(time.Second)
		}
		*x = &next
	case **int:
		n := 1
		if *x != nil {
			n = **x + 1
		}
		*x = &n
	case *[]string:
		*x = append(slices.Clone(*x), "changed")
	case *[]IOV:
		*x = append(slices.Clone(*x), IOV{Since: 392002, Payload: strings.Repeat("d", 40)})
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

// paths are every field path of the three structs, as the tables name them.
func paths() []string {
	var out []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := prefix + f.Name
			switch {
			case f.Type == reflect.TypeFor[*RunInfo]():
				walk(name+".", f.Type.Elem())
			case f.Type == reflect.TypeFor[[]IOV]():
				out = append(out, name)
				walk(name+".", f.Type.Elem())
			default:
				out = append(out, name)
			}
		}
	}
	walk("", reflect.TypeFor[Observation]())
	return out
}

// TestIdentityTablesCoverEveryField fails when a field is added to Observation, RunInfo or IOV without
// saying which kinds carry it, and when a table names a field that no longer exists.
func TestIdentityTablesCoverEveryField(t *testing.T) {
	t.Parallel()
	all := paths()
	carried := map[string]bool{}
	for _, f := range common {
		carried[f] = true
	}
	for _, k := range Kinds {
		fs, ok := carries[k]
		if !ok {
			t.Errorf("kind %s is not in carries: say which fields its observations carry", k)
		}
		for _, f := range fs {
			carried[f] = true
		}
		if _, ok := required[k]; !ok {
			t.Errorf("kind %s is not in required: say which fields Validate requires", k)
		}
	}
	for _, f := range all {
		if !carried[f] {
			t.Errorf("field %s is carried by no kind: add it to carries (and decide its place in notInKey, required and notInJSON, and in internal/reconcile's compare)", f)
		}
	}
	named := func(table string, f string) {
		if !slices.Contains(all, f) {
			t.Errorf("%s names %s, which is not a field", table, f)
		}
	}
	for k, fs := range carries {
		for _, f := range fs {
			named(fmt.Sprintf("carries[%s]", k), f)
		}
	}
	for k, fs := range notInKey {
		for f := range fs {
			named(fmt.Sprintf("notInKey[%s]", k), f)
		}
	}
	for k, fs := range required {
		for _, f := range fs {
			named(fmt.Sprintf("required[%s]", k), f)
		}
	}
	for f := range notInJSON {
		named("notInJSON", f)
	}
}

func kindFields(k Kind) []string {
	return append(slices.Clone(common), carries[k]...)
}

// TestIdentityKey: changing a field a kind carries changes its key, unless notInKey says why not; and a
// field notInKey names does not.
func TestIdentityKey(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds {
		base := identityBase(k)
		for _, f := range kindFields(k) {
			if f == "Kind" {
				continue // another kind is another set of fields; that the kind is in every key is pinned by TestKeyIsStable
			}
			o := identityBase(k)
			change(t, &o, f)
			why, out := notInKey[k][f]
			if !out {
				why, out = notInKey[""][f]
			}
			switch changed := o.KeySum() != base.KeySum(); {
			case !changed && !out:
				t.Errorf("%s: changing %s leaves the key as it was: put it in KeySum, or in notInKey with the reason", k, f)
			case changed && out:
				t.Errorf("%s: changing %s changes the key, but notInKey says it is left out (%s)", k, f, why)
			}
		}
	}
}

// TestIdentityValidation: every base observation is valid; emptying a field required lists makes it
// invalid, and emptying any other field keeps it valid.
func TestIdentityValidation(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds {
		base := identityBase(k)
		if err := base.Validate(); err != nil {
			t.Fatalf("%s: base observation invalid: %v", k, err)
		}
		for _, f := range kindFields(k) {
			if f == "Kind" {
				continue
			}
			o := identityBase(k)
			v := field(t, &o, f)
			v.Set(reflect.Zero(v.Type()))
			err := o.Validate()
			switch req := slices.Contains(required[k], f); {
			case req && err == nil:
				t.Errorf("%s: Validate accepts an empty %s, which required lists", k, f)
			case !req && err != nil:
				t.Errorf("%s: Validate refuses an empty %s (%v): add it to required", k, f, err)
			}
		}
	}
	o := identityBase(KindOverride)
	o.Action = OverrideAccept
	if err := o.Validate(); err != nil {
		t.Errorf("an accept of a workflow: %v", err)
	}
	o.Workflow = ""
	if err := o.Validate(); err == nil {
		t.Error("an accept without a workflow is valid")
	}
}

// TestIdentityJSON: every field but those notInJSON names shows in AppendJSON's output and survives the
// way back through encoding/json, alone and with every other field of its kind.
func TestIdentityJSON(t *testing.T) {
	t.Parallel()
	roundTrip := func(o Observation) (Observation, []byte) {
		t.Helper()
		b, err := o.AppendJSON(nil)
		if err != nil {
			t.Fatalf("%s: AppendJSON: %v", o.Kind, err)
		}
		var back Observation
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %s does not decode: %v", o.Kind, b, err)
		}
		return back, b
	}
	for _, k := range Kinds {
		base := identityBase(k)
		back, baseJSON := roundTrip(base)
		base.Seq = 0 // notInJSON
		if !reflect.DeepEqual(back, base) {
			t.Errorf("%s: %s reads back as\n%+v\nwant\n%+v", k, baseJSON, back, base)
		}
		for _, f := range kindFields(k) {
			if f == "Kind" {
				continue
			}
			o := identityBase(k)
			change(t, &o, f)
			_, b := roundTrip(o)
			_, out := notInJSON[f]
			switch same := string(b) == string(baseJSON); {
			case same && !out:
				t.Errorf("%s: changing %s leaves the JSON as it was: write it in AppendJSON, or say in notInJSON why not", k, f)
			case !same && out:
				t.Errorf("%s: changing %s changes the JSON, but notInJSON says it is left out", k, f)
			}
		}
	}
}
