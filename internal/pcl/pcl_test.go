package pcl

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSinces(t *testing.T) {
	t.Parallel()
	// cms-interfaces.md §3.2: 1406876667346979 is run 327564, lumi 35.
	if r, l := UnpackLumi(1406876667346979); r != 327564 || l != 35 {
		t.Fatalf("UnpackLumi = %d, %d", r, l)
	}
	if PackLumi(327564, 35) != 1406876667346979 {
		t.Fatal("PackLumi does not invert UnpackLumi")
	}
	if got := SinceOfRun(TimeLumi, 327564); got != 327564<<32|1 {
		t.Errorf("lumi FCSR since = %d", got)
	}
	if RunOfSince(TimeRun, 392680) != 392680 || RunOfSince(TimeLumi, PackLumi(392680, 7)) != 392680 || RunOfSince(TimeTime, 1<<40) != 0 {
		t.Error("RunOfSince")
	}
	if RunOfSince(TimeRun, Infinity) != 0 {
		t.Error("a run-typed infinity is no run")
	}
}

func TestKeyIdentifiesFacts(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 5, 29, 4, 57, 47, 0, time.UTC)
	a := Observation{Source: SourceCondDB, Kind: KindIOV, Run: 392671, At: at, Tag: "SiStripApvGain_PCL_v0_prompt",
		Since: 392671, Inserted: at, Payload: "2f1a7c3e5b9d0c4e6f8a1b2c3d4e5f6071829304"}
	b := a
	b.Seen = at.Add(time.Hour) // seen again later: the same fact
	if a.Key() != b.Key() {
		t.Error("the same IOV seen twice has two keys")
	}
	c := a
	c.Inserted = at.Add(time.Second) // a second row at the same since: another fact
	if a.Key() == c.Key() {
		t.Error("two IOV rows share a key")
	}
	s := a
	s.Synchronization, s.Seen = "pcl", at.Add(time.Hour) // the same row, read with its tag's synchronization
	if a.Key() != s.Key() {
		t.Error("an IOV row read with and without its tag's synchronization has two keys")
	}
	// A verdict that flips good → bad → good is three facts: the spy sends a verdict when it changes,
	// stamped with that poll, and the last "good" must be stored to count.
	good := Observation{Source: SourceDQM, Kind: KindDQMQuality, Run: 392671, At: at, Workflow: "SiStripGains", Quality: QualityGood}
	bad := good
	bad.At, bad.Quality = at.Add(10*time.Minute), QualityBad
	goodAgain := good
	goodAgain.At = at.Add(20 * time.Minute)
	if good.Key() == bad.Key() || good.Key() == goodAgain.Key() || bad.Key() == goodAgain.Key() {
		t.Error("a DQM verdict that flips back shares a key with an earlier verdict")
	}
	seenLater := good
	seenLater.Seen = at.Add(time.Hour)
	if good.Key() != seenLater.Key() {
		t.Error("the same DQM verdict seen twice has two keys")
	}
	d := Observation{Source: SourceTier0, Kind: KindStreamDone, Run: 392671, At: at, Stream: "Express", Done: true}
	e := d
	e.At = at.Add(5 * time.Minute)
	if d.Key() != e.Key() {
		t.Error("stream done seen at two polls has two keys")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	at := time.Now()
	cases := []struct {
		o    Observation
		want string
	}{
		{Observation{Kind: KindRun, At: at}, "no source"},
		{Observation{Source: SourceOMS, Kind: KindRun, Run: 1}, "no time"},
		{Observation{Source: SourceOMS, Kind: KindRun, Run: 1, At: at}, "run_info.start"},
		{Observation{Source: SourceDropbox, Kind: KindUploadStatus, At: at, Tag: "t", File: "f", Status: "maybe"}, "status"},
		{Observation{Source: SourceOperator, Kind: KindOverride, Run: 5, At: at, Action: OverrideHold, Actor: "a"}, "reason"},
		{Observation{Source: SourceOperator, Kind: KindOverride, Run: 5, At: at, Action: OverrideAccept, Actor: "a", Reason: "r"}, "workflow"},
		{Observation{Source: SourceDQM, Kind: "gossip", At: at}, "unknown kind"},
		{Observation{Source: SourceOMS, Kind: KindRun, Run: 7, At: at, RunInfo: &RunInfo{Start: at, Stop: func() *time.Time { s := at.Add(-time.Minute); return &s }()}}, "before start"},
	}
	for _, c := range cases {
		err := c.o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %q", c.o, err, c.want)
		}
	}
}

func TestCatalogue(t *testing.T) {
	t.Parallel()
	c := DefaultCatalogue()
	if n := len(c.Workflows()); n != 18 {
		t.Errorf("%d workflows, want the 18 of cms-interfaces.md §5", n)
	}
	w, in, ok := c.ByInputTag("SiStripApvGain_pcl")
	if !ok || w.Name != "SiStripGains" || len(in.Destinations) != 2 {
		t.Fatalf("ByInputTag: %v %v %v", w, in, ok)
	}
	if !w.RunsIn("Express") || !w.RunsIn("HIExpress") || w.RunsIn("ExpressCosmics") {
		t.Error("RunsIn")
	}
	if _, err := NewCatalogue([]Workflow{{Name: "A", Producer: "P", Streams: []string{"Express"}, Inputs: []Input{{Tag: "x", TimeType: TimeRun}}},
		{Name: "B", Producer: "Q", Streams: []string{"Express"}, Inputs: []Input{{Tag: "x", TimeType: TimeRun}}}}); err == nil ||
		!strings.Contains(err.Error(), "both A and B") {
		t.Errorf("shared input tag: %v", err)
	}
	if _, err := NewCatalogue([]Workflow{{Name: "A", Producer: "P", Streams: []string{"Express"}, Inputs: []Input{{Tag: "x", TimeType: "Epoch"}}}}); err == nil {
		t.Error("bad time type accepted")
	}
	if i, ok := c.InputIndex("SiStripApvGain_pcl"); !ok || i != c.InputIndexOf(3, 0) {
		t.Errorf("input index %d", i)
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	c := DefaultCatalogue()
	p := DefaultPolicy()
	if err := p.Validate(c); err != nil {
		t.Fatalf("default policy: %v", err)
	}
	// By default, in every class, a no-payload is ok where it is confirmed and only there.
	for _, class := range []string{"Collisions25", "Cosmics25", "HIRun2025", "Commissioning25"} {
		cp := p.For(class)
		unconfirmed := WorkflowStatus{Name: "SiStripGains", State: StateNoPayload}
		confirmed := WorkflowStatus{Name: "SiStripGains", State: StateNoPayload, Flags: []Flag{FlagNoPayloadConfirmed}}
		if cp.NoPayloadAccepted(&unconfirmed) || !cp.NoPayloadAccepted(&confirmed) {
			t.Errorf("%s: unconfirmed accepted %v, confirmed accepted %v; want false, true", class,
				cp.NoPayloadAccepted(&unconfirmed), cp.NoPayloadAccepted(&confirmed))
		}
	}
	if got := p.For("Cosmics25"); got.Pattern != "Cosmics*" {
		t.Errorf("For(Cosmics25) = %+v", got)
	}
	strict := ClassPolicy{RequirePayload: []string{"SiStripGains"}, NoPayloadOK: []string{"LumiPCC"}}
	for _, tc := range []struct {
		ws   WorkflowStatus
		want bool
	}{
		{WorkflowStatus{Name: "SiStripGains", Flags: []Flag{FlagNoPayloadConfirmed}}, false}, // must deliver
		{WorkflowStatus{Name: "SiPixelAli", Flags: []Flag{FlagNoPayloadConfirmed}}, true},
		{WorkflowStatus{Name: "LumiPCC"}, true}, // any absence accepted
		{WorkflowStatus{Name: "SiPixelAli"}, false},
	} {
		if got := strict.NoPayloadAccepted(&tc.ws); got != tc.want {
			t.Errorf("%s flags %v: accepted %v, want %v", tc.ws.Name, tc.ws.Flags, got, tc.want)
		}
	}
	bad0 := DefaultPolicy()
	bad0.Classes[1].RequirePayload = []string{"NoSuchWorkflow"}
	if err := bad0.Validate(c); err == nil || !strings.Contains(err.Error(), "require_payload") {
		t.Errorf("unknown required payload: %v", err)
	}
	bad := DefaultPolicy()
	bad.Classes[0].Required = []string{"SiStripGainz"}
	if err := bad.Validate(c); err == nil || !strings.Contains(err.Error(), "SiStripGainz") {
		t.Errorf("unknown workflow: %v", err)
	}
	bad = DefaultPolicy()
	bad.Classes[0].RunDeadline = time.Hour
	if err := bad.Validate(c); err == nil || !strings.Contains(err.Error(), "before workflow_deadline") {
		t.Errorf("impossible deadline: %v", err)
	}
}

// TestDefaultRunDeadlineIsTier0Lock: by default a run times out when Tier-0 alone would lock it, 48 h
// after stop less the 30 min lock offset (cms-interfaces.md §1.7), so that Spy Agency never releases a
// run later than Tier-0 would without it.
func TestDefaultRunDeadlineIsTier0Lock(t *testing.T) {
	t.Parallel()
	for _, c := range DefaultPolicy().Classes {
		if c.RunDeadline != 47*time.Hour+30*time.Minute {
			t.Errorf("class %s: run deadline %s, want 47h30m", c.Pattern, c.RunDeadline)
		}
	}
	if got := DefaultPolicy().For("no class matches this").RunDeadline; got != 47*time.Hour+30*time.Minute {
		t.Errorf("last resort class: run deadline %s", got)
	}
}

func TestStreamDoneFalseIsWritten(t *testing.T) {
	t.Parallel()
	o := Observation{Source: SourceTier0, Kind: KindStreamDone, Run: 392680, At: time.Unix(0, 0).UTC(), Stream: "Express"}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"done":false`) || strings.Count(string(b), `"done"`) != 1 {
		t.Errorf("%s", b)
	}
	var back Observation
	if err := json.Unmarshal(b, &back); err != nil || back.Stream != "Express" || back.Kind != KindStreamDone {
		t.Errorf("round trip: %v %+v", err, back)
	}
	iov, _ := json.Marshal(Observation{Source: SourceCondDB, Kind: KindIOV, Tag: "T", At: time.Unix(0, 0).UTC()})
	if strings.Contains(string(iov), "done") {
		t.Errorf("an IOV carries done: %s", iov)
	}
}

func TestCatalogueGates(t *testing.T) {
	t.Parallel()
	wf := func(name, tag string, gates map[string]bool, dests ...string) Workflow {
		return Workflow{Name: name, Producer: "P" + name, Streams: []string{"Express"},
			Inputs: []Input{{Tag: tag, TimeType: TimeRun, Destinations: dests, Gates: gates}}}
	}
	c, err := NewCatalogue([]Workflow{wf("A", "a_pcl", map[string]bool{"A_hlt": true, "A_prompt": false}, "A_hlt", "A_prompt", "A_express")})
	if err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[string][2]bool{"A_hlt": {true, true}, "A_prompt": {false, true}, "A_express": {false, false}} {
		i, _ := c.DestinationIndex(tag)
		if g, set := c.GatesOf(i); g != want[0] || set != want[1] {
			t.Errorf("%s: gates %v set %v, want %v", tag, g, set, want)
		}
	}
	for name, ws := range map[string][]Workflow{
		"not one of its destinations": {wf("A", "a_pcl", map[string]bool{"B_prompt": true}, "A_prompt")},
		"the opposite":                {wf("A", "a_pcl", map[string]bool{"T": true}, "T"), wf("B", "b_pcl", map[string]bool{"T": false}, "T")},
	} {
		if _, err := NewCatalogue(ws); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The same say twice is no conflict.
	if _, err := NewCatalogue([]Workflow{wf("A", "a_pcl", map[string]bool{"T": true}, "T"), wf("B", "b_pcl", map[string]bool{"T": true}, "T")}); err != nil {
		t.Error(err)
	}
}

func TestTagGates(t *testing.T) {
	t.Parallel()
	for sync, want := range map[string]bool{"pcl": true, "prompt": true, "": true, "PCL": true, "something new": true,
		"hlt": false, "express": false, "any": false, "validation": false, "mc": false, "runmc": false, "offline": false} {
		if got := TagGates(sync); got != want {
			t.Errorf("TagGates(%q) = %v, want %v", sync, got, want)
		}
	}
}
