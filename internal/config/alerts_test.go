package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestAlertDefaults: every rule is on with its documented defaults, its runbook is the one this server
// serves, and a notifier takes the defaults of the keys it leaves out.
func TestAlertDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse("alerts.yaml", []byte(`
server: {public_url: "https://spyagency.web.cern.ch/"}
alerts:
  rules:
    run-held: {after: 3h}
  alertmanagers: [{name: am, url: "http://127.0.0.1:9093"}]
  email: [{name: shift, smtp: "cernmx.cern.ch:587", from: spyagency@cern.ch, to: [alca@cern.ch]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Alerts
	if c.AlertsURL() != "https://spyagency.web.cern.ch" || a.Interval != 30*time.Second || a.MaxSilence != 168*time.Hour {
		t.Errorf("alerts block %+v, URL %s", a, c.AlertsURL())
	}
	for _, name := range AlertRuleNames {
		r, ok := a.Rules.Rule(name)
		if !ok || !r.Enabled || r.Severity == "" || r.Runbook != "" || !slices.Equal(r.GroupBy, []string{"alertname"}) {
			t.Errorf("rule %s: %+v (known %v)", name, r, ok)
		}
	}
	if got := DefaultRunbook(c.AlertsURL(), "at-risk"); got != "https://spyagency.web.cern.ch/alerts/runbook#at-risk" {
		t.Errorf("default runbook %s", got)
	}
	if a.Rules.RunHeld.After != 3*time.Hour || a.Rules.WorkflowLate.After != 10*time.Hour || a.Rules.InOrderJam.Count != 1 ||
		a.Rules.StoreTrouble.MinFreeBytes != 1<<30 || a.Rules.SourceStale.KeepFiringFor != 10*time.Minute {
		t.Errorf("thresholds %+v", a.Rules)
	}
	if _, ok := a.Rules.Rule("no-such-rule"); ok {
		t.Error("an unknown rule was found")
	}
	if am := a.Alertmanagers[0]; am.Timeout != 10*time.Second || am.RetryFor != time.Hour || am.Resend != time.Minute {
		t.Errorf("alertmanager defaults %+v", am)
	}
	if e := a.Email[0]; e.Timeout != 10*time.Second || e.RetryFor != time.Hour {
		t.Errorf("email defaults %+v", e)
	}
	d := Default()
	if d.AlertsURL() != "http://127.0.0.1:8080" {
		t.Errorf("default external URL %q, want the server's address", d.AlertsURL())
	}
	d.Server.Addr = "127.0.0.1:18931" // a flag, after the file was read
	if d.AlertsURL() != "http://127.0.0.1:18931" {
		t.Errorf("external URL %q after the address changed", d.AlertsURL())
	}
	d.Alerts.ExternalURL = "https://alerts.example.cern.ch/"
	if d.AlertsURL() != "https://alerts.example.cern.ch" {
		t.Errorf("external URL %q, want the configured one", d.AlertsURL())
	}
}

func TestEmailPassword(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) { return map[string]string{"SMTP_PW": "from-env"}[k], k == "SMTP_PW" }
	for _, tc := range []struct {
		e    EmailNotifier
		want string
		err  bool
	}{
		{EmailNotifier{Name: "a"}, "", false},
		{EmailNotifier{Name: "b", Username: "u", PasswordFile: pwFile}, "s3cret", false},
		{EmailNotifier{Name: "c", Username: "u", PasswordEnv: "SMTP_PW"}, "from-env", false},
		{EmailNotifier{Name: "d", Username: "u", PasswordEnv: "UNSET"}, "", true},
		{EmailNotifier{Name: "e", Username: "u"}, "", true},
	} {
		got, err := tc.e.Password(env)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: password %q err %v, want %q (error %v)", tc.e.Name, got, err, tc.want, tc.err)
		}
	}
}
