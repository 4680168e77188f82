package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// want is one expected problem: its exact place and field, and a piece of its message.
type want struct {
	line, col int
	field     string
	msg       string
}

func TestBrokenFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		want []want
	}{
		{"broken_syntax.yaml", []want{{7, 0, "", "did not find expected ',' or ']'"}}},
		{"broken_indent.yaml", []want{{3, 0, "", "mapping values are not allowed"}}},
		{"broken_fields.yaml", []want{
			{3, 3, "server.adress", `unknown field "adress"`},
			{4, 17, "server.read_timeout", `"15" has no unit`},
			{5, 18, "server.write_timeout", `bad duration "soon"`},
			{6, 19, "server.max_body_bytes", "want an integer"},
			{8, 8, "store.dsn", "want a string, got a list"},
			{11, 15, "sources.oms.interval", `bad duration "1 minute"`},
			{12, 18, "sources.oms.stale_after", "want an integer"},
			{13, 14, "sources.oms.enabled", "want true or false"},
			{14, 3, "sources.lhc", `unknown field "lhc"`},
			{18, 3, "agency.reconcile_batch", "given twice (first on line 17)"},
			{19, 1, "verbose", `unknown field "verbose"`},
		}},
		{"broken_policy.yaml", []want{
			{5, 32, "policy.classes[0].required[1]", `"SiStripGainz" is not in the catalogue`},
			{6, 28, "policy.classes[0].no_payload_ok[1]", `"NoSuchWorkflow" is not in the catalogue`},
			{7, 7, "policy.classes[0].workflow_deadline", "must be positive"},
			{9, 7, "policy.classes[0].on_timeout", `must be "release" or "hold", got "wait"`},
			{12, 7, "policy.classes[1].run_deadline", "run_deadline 20h0m0s is before workflow_deadline 30h0m0s"},
			{13, 7, "policy.classes[1].at_risk_fraction", "between 0 and 1"},
			{14, 7, "policy.classes[1].min_run_length", "must not be negative"},
			{15, 7, "policy.classes[2].pattern", `bad pattern "HI[*"`},
			// run_deadline is the default 47h30m here, so the line to fix is the workflow_deadline's.
			{16, 7, "policy.classes[2].workflow_deadline", "run_deadline 47h30m0s is before workflow_deadline 60h0m0s"},
			{17, 7, "policy.classes[3].pattern", "every class needs a pattern"},
		}},
		{"broken_catalogue.yaml", []want{
			{9, 5, "catalogue[1].name", `"SiStripGains" is defined twice`},
			{13, 9, "catalogue[1].inputs[0].tag", `"SiStripApvGain_pcl" is already an input of workflow SiStripGains`},
			{14, 9, "catalogue[1].inputs[0].time_type", `unknown time type "hourly"`},
			{15, 5, "catalogue[2].name", "needs a name"},
			{16, 5, "catalogue[2].streams", "at least one express stream"},
			{17, 5, "catalogue[2].inputs", "at least one input tag"},
			{21, 32, "policy.classes[0].required[1]", `"SiPixelAli" is not in the catalogue (the catalogue in this file replaces the built-in one)`},
		}},
		{"broken_sources.yaml", []want{
			{2, 3, "store.dsn", `unknown DSN scheme "mysql"`},
			{5, 5, "sources.oms.url", "want an http:// or https:// URL"},
			{6, 5, "sources.oms.interval", "must be positive, got -1m0s"},
			{7, 5, "sources.oms.jitter", "between 0 and 1"},
			{9, 5, "sources.tier0.enabled", "enabled but has nothing to read: set url"},
			{10, 5, "sources.tier0.stale_after", "at least 1"},
			{11, 3, "sources.harvest", "only one of url, dir and dsn"},
			{14, 5, "sources.harvest.mtime_slack", "must not be negative"},
			{15, 5, "sources.harvest.timeout", "must be positive"},
			{17, 5, "sources.dropbox.dsn", "does not read a database"},
			{19, 5, "sources.conddb.dsn", "has no path"},
			{21, 5, "sources.dqm.url", `got "ftp://cmsweb.cern.ch/dqm/offline"`},
			{22, 5, "sources.dqm.full_rescan", "only the harvest source reads it"},
			{23, 5, "sources.dqm.notifications", "only the harvest source reads it"},
			{25, 3, "links.oms", "want an http:// or https:// URL"},
			{27, 3, "server.addr", "missing port"},
		}},
		{"broken_classes.yaml", []want{
			{3, 5, "run_classes[0].hlt_key", "bad regexp"},
			{4, 5, "run_classes[1].class", "needs a class name"},
			{5, 5, "run_classes[1].era", "bad regexp"},
			{6, 5, "run_classes[2].class", "unknown placeholder"},
			{8, 5, "run_classes[2].min_b_field", "must not be negative"},
		}},
		{"broken_alerts.yaml", []want{
			{3, 3, "alerts.interval", "must be positive"},
			{4, 12, "alerts.labels.run", "set by the rules themselves"},
			{4, 22, "alerts.labels.9lives", "a label name is letters"},
			{6, 21, "alerts.rules.workflow-late.severity", `want critical, warning or info, got "page"`},
			{6, 37, "alerts.rules.workflow-late.after", "must not be negative"},
			{7, 21, "alerts.rules.upload-failed.after", "the upload-failed rule has no after threshold"},
			{8, 20, "alerts.rules.in-order-jam.count", "at least 1"},
			{9, 15, "alerts.rules.at-risk.runbook", "want an http:// or https:// URL"},
			{9, 46, "alerts.rules.at-risk.group_by[0]", "not a label name"},
			{10, 5, "alerts.rules.workflow-lat", `unknown field "workflow-lat" (did you mean "workflow-late"?)`},
			{12, 7, "alerts.alertmanagers[0].url", "needs its url"},
			{14, 7, "alerts.webhooks[0].name", `notifier "am" is already the name of alerts.alertmanagers[0]`},
			{18, 7, "alerts.email[0].smtp", "host:port"},
			{19, 7, "alerts.email[0].from", "sender's address"},
			{20, 7, "alerts.email[0].to", "at least one recipient"},
			{21, 7, "alerts.email[0].username", "a username needs its password"},
			{22, 7, "alerts.email[0].password", "password_file or in an environment variable named by password_env"},
		}},
		{"broken_secrets.yaml", []want{
			{3, 3, "store.dsn", "carries a password"},
			{4, 3, "store.password", "password_file or in an environment variable named by password_env"},
			{8, 5, "sources.oms.client_secret", "token_file or in an environment variable named by token_env"},
			{11, 5, "sources.dropbox.url", "carries a password"},
			{12, 1, "api_token", "a *_file or *_env key"},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			name := filepath.Join("testdata", tc.file)
			got := Check(name, mustRead(t, tc.file))
			for i := range max(len(got), len(tc.want)) {
				switch {
				case i >= len(got):
					t.Errorf("missing problem %+v", tc.want[i])
				case i >= len(tc.want):
					t.Errorf("unexpected problem %s", got[i])
				default:
					g, w := got[i], tc.want[i]
					if g.Line != w.line || g.Column != w.col || g.Field != w.field || !strings.Contains(g.Message, w.msg) || g.File != name {
						t.Errorf("problem %d:\n got  %s\n want %s:%d:%d: %s: ...%s...", i, g, name, w.line, w.col, w.field, w.msg)
					}
				}
			}
			if _, err := Parse(name, mustRead(t, tc.file)); err == nil {
				t.Error("Parse accepted a broken file")
			}
		})
	}
}

func TestSyntaxErrorLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src string
		line      int
	}{
		{"tab indentation", "server:\n\taddr: x\n", 2},
		{"unclosed quote", "server:\n  addr: \"127.0.0.1:8080\n  public_url: x\n", 2}, // where the quote opens
		{"unclosed flow mapping", "server: {addr: x\nstore: {}\n", 2},                 // where yaml gives up
		{"block sequence inside mapping", "server:\n  addr: x\n  - y\n", 2},           // the mapping it breaks
		{"bad first line", "- a\nb: c\n", 2},
		{"two documents", "server: {}\n---\nstore: {}\n", 2},
		{"undefined alias", "data_dir: &nopeish /tmp\nserver:\n  addr: *nope\n", 3},
	} {
		got := Check("s.yaml", []byte(tc.src))
		if len(got) != 1 || got[0].Line != tc.line {
			t.Errorf("%s: problems %v, want one on line %d", tc.name, got, tc.line)
		}
	}
}

func TestWrongShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src   string
		line  int
		field string
		msg   string
	}{
		{"- a\n- b\n", 1, "", "must be a mapping"},
		{"server: 8080\n", 1, "server", "must be a mapping"},
		{"policy:\n  classes: Collisions*\n", 2, "policy.classes", "want a list"},
		{"policy:\n  classes:\n    - Collisions*\n", 3, "policy.classes[0]", "want a mapping"},
		{"server: &s\n  <<: *s\n", 1, "server", "merge key includes the mapping itself"},
		{"run_classes:\n  - class: X\n    stable_beam: maybe\n", 3, "run_classes[0].stable_beam", "want true or false"},
		{"run_classes:\n  - class: X\n    min_b_field: .nan\n", 3, "run_classes[0].min_b_field", "want a number"},
		{"sources:\n  oms:\n    jitter: [1]\n", 3, "sources.oms.jitter", "want a number, got a list"},
		{"agency:\n  reconcile_batch: 99999999999999999999\n", 2, "agency.reconcile_batch", "want an integer"},
		{"? [a, b]\n: c\n", 1, "", "a key must be a plain name"},
	} {
		got := Check("w.yaml", []byte(tc.src))
		if len(got) != 1 || got[0].Line != tc.line || got[0].Field != tc.field || !strings.Contains(got[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at line %d, field %q, saying %q", tc.src, got, tc.line, tc.field, tc.msg)
		}
	}
}

// FuzzCheck: no input makes Check or Parse panic; they agree on validity; whatever Parse accepts, the
// pcl package accepts too, and prints back to a file that parses to the same configuration.
func FuzzCheck(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		problems := Check("fuzz.yaml", data)
		c, err := Parse("fuzz.yaml", data)
		if (Errors(problems) == 0) != (err == nil) {
			t.Fatalf("Check found %d errors but Parse said %v", Errors(problems), err)
		}
		for _, p := range problems {
			if p.File != "fuzz.yaml" || p.Message == "" || p.Line < 0 {
				t.Fatalf("malformed problem %+v", p)
			}
		}
		if err != nil {
			return
		}
		cat, err := c.Catalogue()
		if err != nil {
			t.Fatalf("accepted a catalogue pcl refuses: %v", err)
		}
		if err := c.Policy.Validate(cat); err != nil {
			t.Fatalf("accepted a policy pcl refuses: %v", err)
		}
		if _, err := Parse("printed.yaml", []byte(c.String())); err != nil {
			t.Fatalf("printed configuration does not parse: %v\n%s", err, c.String())
		}
	})
}

// TestDeprecatedMaxWakeDelay: the old name of agency.resync_interval is read as it, with a warning that
// does not refuse the file; both names at once are an error, whichever comes first.
func TestDeprecatedMaxWakeDelay(t *testing.T) {
	t.Parallel()
	old := "agency:\n  reconcile_batch: 50\n  max_wake_delay: 45s\n"
	problems := Check("old.yaml", []byte(old))
	if len(problems) != 1 || !problems[0].Warning || problems[0].Line != 3 || problems[0].Field != "agency.max_wake_delay" ||
		!strings.Contains(problems[0].Message, "deprecated: read as agency.resync_interval") || Errors(problems) != 0 {
		t.Fatalf("problems %v, want one warning on line 3", problems)
	}
	if got := problems[0].String(); got != "old.yaml:3:3: agency.max_wake_delay: warning: deprecated: read as agency.resync_interval; rename the key" {
		t.Errorf("warning reads %q", got)
	}
	c, err := Parse("old.yaml", []byte(old))
	if err != nil {
		t.Fatalf("a deprecated key refused the file: %v", err)
	}
	if c.Agency.ResyncInterval != 45*time.Second || len(c.Warnings) != 1 || !c.Warnings[0].Warning {
		t.Errorf("resync_interval %s, warnings %v", c.Agency.ResyncInterval, c.Warnings)
	}
	for _, src := range []string{
		"agency:\n  resync_interval: 1m\n  max_wake_delay: 45s\n",
		"agency:\n  max_wake_delay: 45s\n  resync_interval: 1m\n",
	} {
		problems := Check("both.yaml", []byte(src))
		if Errors(problems) != 1 {
			t.Errorf("%q: problems %v, want one error", src, problems)
			continue
		}
		for _, p := range problems {
			if !p.Warning && (p.Line != 3 || !strings.Contains(p.Message, "set twice") || !strings.Contains(p.Message, "keep only resync_interval")) {
				t.Errorf("%q: error %s", src, p)
			}
		}
		if _, err := Parse("both.yaml", []byte(src)); err == nil {
			t.Errorf("%q: both names accepted", src)
		}
	}
	// A bad value under the old name is reported where it is written.
	problems = Check("bad.yaml", []byte("agency:\n  max_wake_delay: -1m\n"))
	if Errors(problems) != 1 || problems[len(problems)-1].Line != 2 || !strings.Contains(problems[len(problems)-1].Message, "must be positive") {
		t.Errorf("a negative old value: %v", problems)
	}
}

// TestLeaseTTL: agency.lease_ttl is read (default 15s) and bounded, an error at its line outside
// [1s, 10m].
func TestLeaseTTL(t *testing.T) {
	t.Parallel()
	c, err := Parse("lease.yaml", []byte("agency:\n  lookback: 72h\n  lease_ttl: 6s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Agency.LeaseTTL != 6*time.Second {
		t.Errorf("lease_ttl %s, want 6s", c.Agency.LeaseTTL)
	}
	if d := Default().Agency.LeaseTTL; d != 15*time.Second {
		t.Errorf("default lease_ttl %s, want 15s", d)
	}
	for _, bad := range []string{"500ms", "11m", "-1s"} {
		problems := Check("lease.yaml", []byte("agency:\n  lookback: 72h\n  lease_ttl: "+bad+"\n"))
		if Errors(problems) != 1 {
			t.Errorf("lease_ttl %s: problems %v, want one error", bad, problems)
			continue
		}
		if got, want := problems[0].String(), "lease.yaml:3:3: agency.lease_ttl: must be between 1s and 10m, got "+bad; got != want && !strings.HasPrefix(got, "lease.yaml:3:") {
			t.Errorf("lease_ttl %s: error reads %q, want %q", bad, got, want)
		}
	}
}

// TestPostgresStoreAndSimulatedClock: a PostgreSQL store DSN is accepted, one with a password in it is
// refused at its line, and a simulated clock is refused unless every enabled source is on this
// machine, each at its line.
func TestPostgresStoreAndSimulatedClock(t *testing.T) {
	t.Parallel()
	if problems := Check("pg.yaml", []byte("data_dir: /tmp/x\nstore:\n  dsn: postgres://spy@db.cern.ch:6600/spy\n  password_env: SPY_PW\n")); len(problems) != 0 {
		t.Errorf("a postgres store: %v, want none", problems)
	}
	problems := Check("pg.yaml", []byte("data_dir: /tmp/x\nstore:\n  dsn: postgres://spy:hunter2@db.cern.ch:6600/spy\n"))
	if len(problems) != 1 || problems[0].Line != 3 || problems[0].Field != "store.dsn" || !strings.Contains(problems[0].Message, "password") ||
		strings.Contains(problems[0].String(), "hunter2") {
		t.Errorf("a postgres store with a password in its DSN: %v", problems)
	}
	clock := "clock:\n  speed: 600\n  epoch: 2026-05-04T06:00:00Z\n  wall_start: 2026-11-26T20:00:00Z\n"
	far := "sources:\n  oms:\n    url: https://cmsoms.cern.ch/agg/api/v1\n  tier0:\n    url: http://127.0.0.1:8081/t0wmadatasvc/prod\n" + clock
	problems = Check("far.yaml", []byte(far))
	if len(problems) != 1 || problems[0].Line != 7 || problems[0].Field != "clock.speed" ||
		!strings.Contains(problems[0].Message, "sources.oms.url https://cmsoms.cern.ch") || strings.Contains(problems[0].Message, "tier0") {
		t.Errorf("a simulated clock on CERN's OMS: %v", problems)
	}
	near := "sources:\n  oms:\n    url: http://127.0.0.1:8081/agg/api/v1\n  tier0:\n    url: http://localhost:8081/t0wmadatasvc/prod\n" +
		"  dqm:\n    url: http://[::1]:8081/dqm/offline\n  harvest:\n    dir: /tmp/sim/harvest\n  conddb:\n    dsn: sqlite:/tmp/sim/conddb.db\n" +
		"  dropbox:\n    enabled: false\n    url: https://cms-conddb.cern.ch/logs/dropBox/\n" + clock
	if problems := Check("near.yaml", []byte(near)); len(problems) != 0 {
		t.Errorf("a simulated clock on loopback sources (and a disabled far one): %v", problems)
	}
	// The production example passes as it is.
	if problems := Check("full.yaml", ExampleYAML()); len(problems) != 0 {
		t.Errorf("the example: %v", problems)
	}
}

// TestHarvestNotifications: the harvest source's notifications default to auto and take auto or off.
func TestHarvestNotifications(t *testing.T) {
	t.Parallel()
	if got := Default().Sources.Harvest.Notifications; got != "auto" {
		t.Errorf("default %q, want auto", got)
	}
	// A Source built in code, without the field, means the default; a value written is kept.
	if got := (Source{}).HarvestNotifications(); got != DefaultNotifications {
		t.Errorf("a Source built in code: %q, want %q", got, DefaultNotifications)
	}
	if got := (Source{Notifications: "off"}).HarvestNotifications(); got != "off" {
		t.Errorf("off written: %q", got)
	}
	for v, want := range map[string]string{"auto": "", "off": "", "on": `want "auto" or "off", got "on"`, `""`: `want "auto" or "off"`} {
		doc := "sources:\n  harvest:\n    dir: /eos/harvest\n    notifications: " + v + "\n"
		problems := Check("n.yaml", []byte(doc))
		switch {
		case want == "" && len(problems) != 0:
			t.Errorf("%s: %+v", v, problems)
		case want != "" && (len(problems) != 1 || problems[0].Field != "sources.harvest.notifications" || problems[0].Line != 4 || !strings.Contains(problems[0].Message, want)):
			t.Errorf("%s: %+v, want one problem at line 4 saying %s", v, problems, want)
		}
		if want == "" {
			c, err := Parse("n.yaml", []byte(doc))
			if err != nil || c.Sources.Harvest.Notifications != v {
				t.Errorf("%s: read as %q, %v", v, c.Sources.Harvest.Notifications, err)
			}
		}
	}
}
