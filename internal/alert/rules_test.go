package alert

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// found runs one rule over a snapshot with the default settings and returns its findings' labels,
// "run=400123 workflow=SiStripGains".
func found(t *testing.T, name string, s Snapshot, tune ...func(*config.AlertRule)) []string {
	t.Helper()
	r, ok := ruleByName(name)
	if !ok {
		t.Fatalf("no rule %s", name)
	}
	rules := config.DefaultAlertRules()
	cfg, _ := rules.Rule(name)
	for _, f := range tune {
		f(&cfg)
	}
	if len(s.Policy.Classes) == 0 {
		s.Policy = pcl.DefaultPolicy()
	}
	var out []string
	for _, f := range r.find(&s, cfg) {
		if f.Rule != name || f.Summary == "" {
			t.Errorf("%s found %+v", name, f)
		}
		var parts []string
		for _, k := range []string{"run", "workflow", "source", "target", "notifier"} {
			if v := f.Labels[k]; v != "" {
				parts = append(parts, k+"="+v)
			}
		}
		out = append(out, strings.Join(parts, " "))
	}
	slices.Sort(out)
	return out
}

func withFlag(ws pcl.WorkflowStatus, f pcl.Flag, until time.Time) pcl.WorkflowStatus {
	ws.Flags, ws.AtRiskUntil = append(ws.Flags, f), until
	return ws
}

func TestRules(t *testing.T) {
	t.Parallel()
	lock := t0.Add(47*time.Hour + 30*time.Minute)
	bad := wf("SiPixelAli", pcl.StateInDB)
	bad.Quality = pcl.QualityBad
	noPayloadOK := wf("LumiPCC", pcl.StateNoPayload)
	noPayloadOK.Required = false
	mixed := runState(testRun, pcl.ReadinessBlocked, t0.Add(time.Hour),
		wf("SiStripGains", pcl.StateUploadFailed), wf("SiStripGainsAAG", pcl.StateTooLate), wf("BeamSpotHP", pcl.StateNoPayload),
		noPayloadOK, bad, wf("SiPixelQuality", pcl.StateAwaitingHarvest), wf("EcalPedestals", pcl.StateNotExpected),
		withFlag(wf("SiStripHitEff", pcl.StateHarvested), pcl.FlagAtRisk, lock))
	released := runState(testRun+1, pcl.ReadinessReleased, t0.Add(time.Hour),
		wf("SiStripGains", pcl.StateAwaitingHarvest), withFlag(wf("SiStripLA", pcl.StateHarvested), pcl.FlagAtRisk, lock))
	timedOut := runState(testRun+2, pcl.ReadinessTimedOut, t0.Add(47*time.Hour), wf("SiStripGains", pcl.StateTimedOut))
	held := runState(testRun+3, pcl.ReadinessHeld, t0, wf("SiStripGains", pcl.StateInDB))
	runs := []pcl.RunState{mixed, released, timedOut, held}
	at := func(d time.Duration) Snapshot { return Snapshot{Now: t0.Add(d), Runs: runs} }

	for _, tc := range []struct {
		rule string
		s    Snapshot
		want []string
		tune func(*config.AlertRule)
	}{
		{rule: "workflow-late", s: at(9 * time.Hour), want: []string{"run=400125 workflow=SiStripGains"}},
		{rule: "workflow-late", s: at(10 * time.Hour), want: []string{"run=400123 workflow=SiPixelQuality", "run=400123 workflow=SiStripHitEff", "run=400125 workflow=SiStripGains"}},
		{rule: "workflow-late", s: at(2 * time.Hour), tune: func(c *config.AlertRule) { c.After = time.Hour },
			want: []string{"run=400123 workflow=SiPixelQuality", "run=400123 workflow=SiStripHitEff", "run=400125 workflow=SiStripGains"}},
		{rule: "upload-failed", s: at(2 * time.Hour), want: []string{"run=400123 workflow=SiStripGains"}},
		{rule: "too-late", s: at(2 * time.Hour), want: []string{"run=400123 workflow=SiStripGainsAAG"}},
		{rule: "no-payload", s: at(2 * time.Hour), want: []string{"run=400123 workflow=BeamSpotHP"}},
		{rule: "dqm-bad", s: at(2 * time.Hour), want: []string{"run=400123 workflow=SiPixelAli"}},
		{rule: "at-risk", s: at(2 * time.Hour), want: []string{"run=400123 workflow=SiStripHitEff"}},
		{rule: "run-blocked", s: at(2 * time.Hour), want: []string{"run=400123"}},
		{rule: "run-blocked", s: at(2 * time.Hour), tune: func(c *config.AlertRule) { c.After = 2 * time.Hour }},
		{rule: "run-timed-out", s: at(48 * time.Hour), want: []string{"run=400125"}},
		{rule: "run-held", s: at(11 * time.Hour)},
		{rule: "run-held", s: at(12 * time.Hour), want: []string{"run=400126"}},
	} {
		if tc.tune == nil {
			tc.tune = func(*config.AlertRule) {}
		}
		if got := found(t, tc.rule, tc.s, tc.tune); !slices.Equal(got, tc.want) {
			t.Errorf("%s at %s: found %v, want %v", tc.rule, tc.s.Now.Sub(t0), got, tc.want)
		}
	}
}

// TestInOrderJam: the first unready run holding newer releasable runs for long enough is one alert,
// named by the run that holds them.
func TestInOrderJam(t *testing.T) {
	t.Parallel()
	first := runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed))
	ready1 := runState(testRun+5, pcl.ReadinessReady, t0.Add(time.Hour), wf("SiStripGains", pcl.StateInDB))
	ready2 := runState(testRun+9, pcl.ReadinessReady, t0.Add(2*time.Hour), wf("SiStripGains", pcl.StateInDB))
	waiting := runState(testRun+12, pcl.ReadinessWaiting, t0.Add(2*time.Hour), wf("SiStripGains", pcl.StateUploading))
	s := Snapshot{Now: t0.Add(3 * time.Hour), Runs: []pcl.RunState{waiting, ready2, first, ready1}}
	if got := found(t, "in-order-jam", s); !slices.Equal(got, []string{"run=400123"}) {
		t.Fatalf("found %v, want the first unready run", got)
	}
	if got := found(t, "in-order-jam", s, func(c *config.AlertRule) { c.Count = 3 }); len(got) != 0 {
		t.Errorf("found %v holding 2 runs with count 3", got)
	}
	s.Now = t0.Add(2*time.Hour + 59*time.Minute)
	if got := found(t, "in-order-jam", s); len(got) != 0 {
		t.Errorf("found %v before the first held run waited 2 h", got)
	}
	s.Now = t0.Add(3 * time.Hour)
	p := pcl.DefaultPolicy()
	for i := range p.Classes {
		p.Classes[i].InOrder = false
	}
	s.Policy = p
	if got := found(t, "in-order-jam", s); len(got) != 0 {
		t.Errorf("found %v without in-order release", got)
	}
}

func TestSourceDeliveryStoreAndNotifierRules(t *testing.T) {
	t.Parallel()
	s := Snapshot{Now: t0,
		Sources:     []pcl.SourceHealth{{Name: pcl.SourceOMS, Stale: true, Failures: 10}, {Name: pcl.SourceDQM, Healthy: true}},
		DeadLetters: []store.OutboxEntry{{Target: "tier0", Run: testRun, Version: 3, Dead: true, Attempts: 100, LastError: "HTTP 422"}},
		Disk:        &DiskSpace{Path: "/var/lib/spyagency", Free: 100 << 20, Total: 100 << 30},
		Notifiers:   []NotifierHealth{{Name: "mail", Kind: "email", Failures: 3}, {Name: "am", Kind: "alertmanager", Failures: 1}},
	}
	for rule, want := range map[string][]string{
		"source-stale":       {"source=oms"},
		"push-undeliverable": {"run=400123 target=tier0"},
		"store-trouble":      {""},
		"notifier-failing":   {"notifier=mail"},
	} {
		if got := found(t, rule, s); !slices.Equal(got, want) {
			t.Errorf("%s: found %v, want %v", rule, got, want)
		}
	}
	s.Disk = &DiskSpace{Path: "/var/lib/spyagency", Free: 10 << 30, Total: 100 << 30}
	if got := found(t, "store-trouble", s); len(got) != 0 {
		t.Errorf("store-trouble with 10 GiB free: %v", got)
	}
	s.StoreError = errors.New("disk I/O error")
	if got := found(t, "store-trouble", s); len(got) != 1 {
		t.Errorf("store-trouble after a refused write: %v", got)
	}
}

// TestEveryRuleImplementedAndDocumented: the configuration's rules, the implementations and the
// runbook name the same rules in the same order.
func TestEveryRuleImplementedAndDocumented(t *testing.T) {
	t.Parallel()
	var impl, docs []string
	for _, r := range rules {
		impl = append(impl, r.name)
	}
	for _, d := range Runbook() {
		docs = append(docs, d.Name)
		if d.Meaning == "" || d.Action == "" {
			t.Errorf("runbook of %s lacks its meaning or action", d.Name)
		}
	}
	if !slices.Equal(impl, config.AlertRuleNames) || !slices.Equal(docs, config.AlertRuleNames) {
		t.Fatalf("rules %v, runbook %v, configuration %v", impl, docs, config.AlertRuleNames)
	}
}
