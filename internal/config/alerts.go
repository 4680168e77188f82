package config

import (
	"fmt"
	"net"
	"net/mail"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Alerts configures the alert rules and where alerts are sent (docs/alerts.md has every rule, what it
// means and what to do).
type Alerts struct {
	// Interval is the time between two evaluations of the rules, in the agency's time (never more often
	// than once a second of real time, whatever a simulated clock's speed). Default 30s.
	Interval time.Duration `yaml:"interval"`
	// ExternalURL is the dashboard's address as people reach it, for the links notifications carry.
	// Default: server.public_url, else http://<server.addr>.
	ExternalURL string `yaml:"external_url"`
	// Labels are added to every alert (e.g. team: alca).
	Labels map[string]string `yaml:"labels"`
	// MaxSilence is the longest a silence may last. Default 168h (a week).
	MaxSilence time.Duration `yaml:"max_silence"`
	// Rules are the rules' thresholds, severities, labels and runbook links.
	Rules AlertRules `yaml:"rules"`
	// Alertmanagers receive every alert through Alertmanager's API v2 (POST /api/v2/alerts).
	Alertmanagers []AlertmanagerNotifier `yaml:"alertmanagers"`
	// Webhooks receive each group of alerts as a POST in Alertmanager's webhook payload shape.
	Webhooks []WebhookNotifier `yaml:"webhooks"`
	// Email sends each group of alerts as one mail over SMTP with STARTTLS.
	Email []EmailNotifier `yaml:"email"`
}

// AlertRules holds one block per rule; the keys are the rules' names.
type AlertRules struct {
	WorkflowLate      AlertRule `yaml:"workflow-late"`      // a workflow not final `after` its run's stop, or timed out
	UploadFailed      AlertRule `yaml:"upload-failed"`      // the upload service refused a payload
	TooLate           AlertRule `yaml:"too-late"`           // a payload reached the DB after the run it was for was released
	NoPayload         AlertRule `yaml:"no-payload"`         // a required workflow wrote no payload where the policy does not allow it
	DQMBad            AlertRule `yaml:"dqm-bad"`            // the DQM quality test of a workflow's output says bad
	AtRisk            AlertRule `yaml:"at-risk"`            // a workflow predicted to miss Tier-0's own lock of its run
	RunBlocked        AlertRule `yaml:"run-blocked"`        // a run that needs a person
	RunTimedOut       AlertRule `yaml:"run-timed-out"`      // a run past its deadline
	RunHeld           AlertRule `yaml:"run-held"`           // a run held by an operator `after` this long
	InOrderJam        AlertRule `yaml:"in-order-jam"`       // `count` releasable runs wait behind the first unready one
	SourceStale       AlertRule `yaml:"source-stale"`       // a spied CMS system stopped answering
	PushUndeliverable AlertRule `yaml:"push-undeliverable"` // a push target refuses or cannot be reached: dead letters
	StoreTrouble      AlertRule `yaml:"store-trouble"`      // the store fails, or its disk has less than min_free_bytes
	NotifierFailing   AlertRule `yaml:"notifier-failing"`   // a notifier cannot deliver alerts
}

// AlertRule is one rule's settings. Only some rules have a threshold: After, Count and MinFreeBytes
// are refused on the others (see AlertRuleUses).
type AlertRule struct {
	// Enabled turns the rule on. Default true.
	Enabled bool `yaml:"enabled"`
	// Severity is critical, warning or info.
	Severity string `yaml:"severity"`
	// For is how long the condition must hold before the alert fires (it is pending until then).
	For time.Duration `yaml:"for"`
	// KeepFiringFor is how long a firing alert stays firing after its condition went: a condition that
	// comes and goes notifies once.
	KeepFiringFor time.Duration `yaml:"keep_firing_for"`
	// After is the rule's time threshold: workflow-late after the run's stop, run-blocked, run-held
	// and in-order-jam since the run's decision.
	After time.Duration `yaml:"after,omitempty"`
	// Count is the rule's number threshold: in-order-jam the newer runs held, notifier-failing the
	// failed deliveries in a row.
	Count int `yaml:"count,omitempty"`
	// MinFreeBytes is store-trouble's threshold of free space on the store's file system.
	MinFreeBytes int64 `yaml:"min_free_bytes,omitempty"`
	// Labels are added to the rule's alerts.
	Labels map[string]string `yaml:"labels"`
	// Runbook is the link to what to do. Default <external_url>/alerts/runbook#<rule>, the runbook
	// the server serves (docs/alerts.md).
	Runbook string `yaml:"runbook"`
	// GroupBy are the labels by which the rule's alerts are grouped into one notification (webhooks and
	// e-mail; Alertmanager groups by its own routes). Default [alertname]: one message for the rule.
	GroupBy []string `yaml:"group_by"`
}

// AlertRuleUses says which thresholds a rule reads.
type AlertRuleUses struct{ After, Count, MinFreeBytes bool }

// AlertRuleNames are the rules, in the order the documentation gives them.
var AlertRuleNames = []string{"workflow-late", "upload-failed", "too-late", "no-payload", "dqm-bad", "at-risk",
	"run-blocked", "run-timed-out", "run-held", "in-order-jam", "source-stale", "push-undeliverable",
	"store-trouble", "notifier-failing"}

// Uses is the thresholds rule name reads.
func Uses(rule string) AlertRuleUses {
	switch rule {
	case "workflow-late", "run-blocked", "run-held":
		return AlertRuleUses{After: true}
	case "in-order-jam":
		return AlertRuleUses{After: true, Count: true}
	case "notifier-failing":
		return AlertRuleUses{Count: true}
	case "store-trouble":
		return AlertRuleUses{MinFreeBytes: true}
	}
	return AlertRuleUses{}
}

// Rule returns a rule's settings by its name.
func (r *AlertRules) Rule(name string) (AlertRule, bool) {
	p := r.field(name)
	if p == nil {
		return AlertRule{}, false
	}
	return *p, true
}

// field points at a rule's block, nil for an unknown name.
func (r *AlertRules) field(name string) *AlertRule {
	v := reflect.ValueOf(r).Elem()
	for i := range v.NumField() {
		if fieldKey(v.Type().Field(i)) == name {
			return v.Field(i).Addr().Interface().(*AlertRule)
		}
	}
	return nil
}

// NotifierCommon are the settings every kind of notifier has (each kind repeats them as its own keys):
// Name identifies the notifier in its health and the alerts' notification log (letters, digits, '-'
// and '_', unique among all notifiers); Timeout bounds one delivery attempt (default 10s); RetryFor is
// how long a notification that fails for a reason worth retrying is retried, with backoff, before it
// is given up (default 1h).
type NotifierCommon struct {
	Name     string
	Timeout  time.Duration
	RetryFor time.Duration
}

// AlertmanagerNotifier is one Alertmanager.
type AlertmanagerNotifier struct {
	Name     string        `yaml:"name"`      // identifies the notifier in its health and the notification log; unique
	Timeout  time.Duration `yaml:"timeout"`   // one delivery attempt; default 10s
	RetryFor time.Duration `yaml:"retry_for"` // a failing notification is retried with backoff this long, then given up; default 1h
	// URL is Alertmanager's base URL; alerts are posted to <url>/api/v2/alerts.
	URL string `yaml:"url"`
	// TokenFile or TokenEnv hold a bearer token, when Alertmanager sits behind an authenticating proxy.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// Resend is how often the firing alerts are posted again: Alertmanager resolves an alert nobody
	// re-posts (its resolve_timeout), and it sends no second notification for the same alert. Default 1m.
	Resend time.Duration `yaml:"resend"`
}

// WebhookNotifier is one receiver of Alertmanager's webhook payload.
type WebhookNotifier struct {
	Name     string        `yaml:"name"`      // identifies the notifier in its health and the notification log; unique
	Timeout  time.Duration `yaml:"timeout"`   // one delivery attempt; default 10s
	RetryFor time.Duration `yaml:"retry_for"` // a failing notification is retried with backoff this long, then given up; default 1h
	URL      string        `yaml:"url"`       // where Alertmanager's webhook payload is posted
	// TokenFile or TokenEnv hold a bearer token sent with each post.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
}

// EmailNotifier sends mail over SMTP. STARTTLS is always required: the password must not travel in
// clear.
type EmailNotifier struct {
	Name     string        `yaml:"name"`      // identifies the notifier in its health and the notification log; unique
	Timeout  time.Duration `yaml:"timeout"`   // one delivery attempt; default 10s
	RetryFor time.Duration `yaml:"retry_for"` // a failing notification is retried with backoff this long, then given up; default 1h
	// SMTP is the server, host:port (587 is submission with STARTTLS).
	SMTP string `yaml:"smtp"`
	// From is the sender; To the recipients.
	From string   `yaml:"from"`
	To   []string `yaml:"to"`
	// Username for SMTP AUTH PLAIN; the password from PasswordFile or PasswordEnv. No username: no AUTH.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// CAFile is a PEM file of the authorities that may sign the server's certificate; default the
	// system's.
	CAFile string `yaml:"ca_file"`
}

// Common are the settings every notifier has.
func (n AlertmanagerNotifier) Common() NotifierCommon {
	return NotifierCommon{n.Name, n.Timeout, n.RetryFor}
}

// Common are the settings every notifier has.
func (n WebhookNotifier) Common() NotifierCommon {
	return NotifierCommon{n.Name, n.Timeout, n.RetryFor}
}

// Common are the settings every notifier has.
func (n EmailNotifier) Common() NotifierCommon { return NotifierCommon{n.Name, n.Timeout, n.RetryFor} }

// Password reads the e-mail notifier's SMTP password; "" without a username.
func (e EmailNotifier) Password(lookupEnv func(string) (string, bool)) (string, error) {
	if e.Username == "" {
		return "", nil
	}
	pw, err := readSecret("email notifier "+e.Name, e.PasswordFile, e.PasswordEnv, lookupEnv)
	if err == nil && pw == "" {
		err = fmt.Errorf("email notifier %s: a username without a password: set password_file or password_env", e.Name)
	}
	return pw, err
}

// Token reads a bearer token from a notifier's token_file or token_env; "" when neither is set.
func Token(name, file, env string, lookupEnv func(string) (string, bool)) (string, error) {
	return readSecret("notifier "+name, file, env, lookupEnv)
}

// Defaults of the alerts block.
const (
	DefaultAlertInterval      = 30 * time.Second
	DefaultMaxSilence         = 7 * 24 * time.Hour
	DefaultNotifierTimeout    = 10 * time.Second
	DefaultRetryFor           = time.Hour
	DefaultAlertmanagerResend = time.Minute
)

// DefaultAlertRules are the rules as shipped: a severity, thresholds from Tier-0's timings
// (cms-interfaces.md §1), and keep-firing times for what can come and go.
func DefaultAlertRules() AlertRules {
	rule := func(sev string) AlertRule {
		return AlertRule{Enabled: true, Severity: sev, GroupBy: []string{"alertname"}}
	}
	r := AlertRules{
		WorkflowLate: rule("warning"), UploadFailed: rule("critical"), TooLate: rule("warning"),
		NoPayload: rule("critical"), DQMBad: rule("warning"), AtRisk: rule("critical"),
		RunBlocked: rule("critical"), RunTimedOut: rule("warning"), RunHeld: rule("warning"),
		InOrderJam: rule("critical"), SourceStale: rule("warning"), PushUndeliverable: rule("critical"),
		StoreTrouble: rule("critical"), NotifierFailing: rule("warning"),
	}
	// Ten hours after stop: past the slowest on-schedule harvest (an express stream closes up to 3 h
	// after stop, the slow streams harvest every 6 h) and well before Tier-0's 12 h harvest timeout.
	r.WorkflowLate.After = 10 * time.Hour
	r.RunBlocked.After = 0
	r.RunHeld.After = 12 * time.Hour
	r.InOrderJam.After, r.InOrderJam.Count = 2*time.Hour, 1
	r.NotifierFailing.Count = 3
	r.StoreTrouble.MinFreeBytes = 1 << 30
	// What can flap: a source's health, the disk, a notifier.
	r.SourceStale.KeepFiringFor = 10 * time.Minute
	r.StoreTrouble.KeepFiringFor = 10 * time.Minute
	r.NotifierFailing.KeepFiringFor = 10 * time.Minute
	return r
}

func defaultAlerts() Alerts {
	return Alerts{Interval: DefaultAlertInterval, MaxSilence: DefaultMaxSilence, Rules: DefaultAlertRules()}
}

// notifierDefault is what a notifier list element starts as before its keys are read.
func notifierDefault(t reflect.Type) (reflect.Value, bool) {
	v := reflect.New(t).Elem()
	switch t {
	case reflect.TypeFor[AlertmanagerNotifier](), reflect.TypeFor[WebhookNotifier](), reflect.TypeFor[EmailNotifier]():
	default:
		return reflect.Value{}, false
	}
	v.FieldByName("Timeout").SetInt(int64(DefaultNotifierTimeout))
	v.FieldByName("RetryFor").SetInt(int64(DefaultRetryFor))
	if t == reflect.TypeFor[AlertmanagerNotifier]() {
		v.FieldByName("Resend").SetInt(int64(DefaultAlertmanagerResend))
	}
	return v, true
}

// finishAlerts fills the defaults that depend on other fields. The external URL (and with it the
// default runbook links) is not filled here: flags change server.addr after the file is read, so it is
// worked out when the alerts start (AlertsURL).
func (c *Config) finishAlerts() {
	for _, name := range AlertRuleNames {
		if r := c.Alerts.Rules.field(name); len(r.GroupBy) == 0 {
			r.GroupBy = []string{"alertname"}
		}
	}
}

// AlertsURL is the dashboard's address for the links alerts carry: alerts.external_url, else
// server.public_url, else http://<server.addr>, without a trailing slash.
func (c *Config) AlertsURL() string {
	u := c.Alerts.ExternalURL
	if u == "" {
		u = c.Server.PublicURL
	}
	if u == "" {
		u = "http://" + c.Server.Addr
	}
	return strings.TrimRight(u, "/")
}

// DefaultRunbook is a rule's runbook link when none is configured: the runbook the server serves.
func DefaultRunbook(externalURL, rule string) string {
	return strings.TrimRight(externalURL, "/") + "/alerts/runbook#" + rule
}

var labelName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ReservedAlertLabels are set by the rules themselves; configured labels cannot replace them.
var ReservedAlertLabels = []string{"alertname", "severity", "run", "workflow", "source", "target", "notifier", "class"}

func (d *decoder) checkLabels(field string, labels map[string]string) {
	for k := range labels {
		f := field + "." + k
		switch {
		case !labelName.MatchString(k):
			d.addf(d.at(f), f, "a label name is letters, digits and '_', not starting with a digit; got %q", k)
		case contains(ReservedAlertLabels, k):
			d.addf(d.at(f), f, "%q is set by the rules themselves and cannot be configured", k)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *decoder) checkAlerts(a Alerts) {
	d.positive("alerts.interval", a.Interval)
	d.positive("alerts.max_silence", a.MaxSilence)
	if a.ExternalURL != "" {
		d.checkURL("alerts.external_url", a.ExternalURL)
	}
	d.checkLabels("alerts.labels", a.Labels)
	for _, name := range AlertRuleNames {
		r, _ := a.Rules.Rule(name)
		d.checkAlertRule("alerts.rules."+name, name, r)
	}
	names := map[string]string{}
	name := func(f string, n NotifierCommon) {
		switch {
		case !targetName.MatchString(n.Name):
			d.addf(d.at(f+".name"), f+".name", "want a name of letters, digits, '-' and '_', got %q", n.Name)
		case names[n.Name] != "":
			d.addf(d.at(f+".name"), f+".name", "notifier %q is already the name of %s", n.Name, names[n.Name])
		default:
			names[n.Name] = f
		}
		d.positive(f+".timeout", n.Timeout)
		d.positive(f+".retry_for", n.RetryFor)
	}
	for i, n := range a.Alertmanagers {
		f := fmt.Sprintf("alerts.alertmanagers[%d]", i)
		name(f, n.Common())
		d.requiredURL(f+".url", n.URL, "an Alertmanager needs its url (the base; alerts go to <url>/api/v2/alerts)")
		d.positive(f+".resend", n.Resend)
	}
	for i, n := range a.Webhooks {
		f := fmt.Sprintf("alerts.webhooks[%d]", i)
		name(f, n.Common())
		d.requiredURL(f+".url", n.URL, "a webhook needs a url")
	}
	for i, n := range a.Email {
		f := fmt.Sprintf("alerts.email[%d]", i)
		name(f, n.Common())
		d.checkEmail(f, n)
	}
}

func (d *decoder) requiredURL(field, raw, missing string) {
	if raw == "" {
		d.addf(d.at(field), field, "%s", missing)
		return
	}
	d.checkURL(field, raw)
}

func (d *decoder) checkAlertRule(field, name string, r AlertRule) {
	switch r.Severity {
	case "critical", "warning", "info":
	default:
		d.addf(d.at(field+".severity"), field+".severity", "want critical, warning or info, got %q", r.Severity)
	}
	d.notNegative(field+".for", r.For)
	d.notNegative(field+".keep_firing_for", r.KeepFiringFor)
	uses := Uses(name)
	for _, th := range []struct {
		key  string
		used bool
		set  bool
	}{{"after", uses.After, r.After != 0}, {"count", uses.Count, r.Count != 0}, {"min_free_bytes", uses.MinFreeBytes, r.MinFreeBytes != 0}} {
		if !th.used && th.set {
			d.addf(d.at(field+"."+th.key), field+"."+th.key, "the %s rule has no %s threshold", name, th.key)
		}
	}
	if uses.After {
		d.notNegative(field+".after", r.After)
	}
	if uses.Count && r.Count < 1 {
		d.addf(d.at(field+".count"), field+".count", "must be at least 1, got %d", r.Count)
	}
	if uses.MinFreeBytes && r.MinFreeBytes < 0 {
		d.addf(d.at(field+".min_free_bytes"), field+".min_free_bytes", "must not be negative, got %d", r.MinFreeBytes)
	}
	d.checkLabels(field+".labels", r.Labels)
	if r.Runbook != "" {
		d.checkURL(field+".runbook", r.Runbook)
	}
	for i, l := range r.GroupBy {
		if !labelName.MatchString(l) {
			f := fmt.Sprintf("%s.group_by[%d]", field, i)
			d.addf(d.at(f), f, "not a label name: %q", l)
		}
	}
}

func (d *decoder) checkEmail(f string, e EmailNotifier) {
	if host, port, err := net.SplitHostPort(e.SMTP); err != nil || host == "" {
		d.addf(d.at(f+".smtp"), f+".smtp", "want the SMTP server as host:port (e.g. smtp.cern.ch:587), got %q", e.SMTP)
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		d.addf(d.at(f+".smtp"), f+".smtp", "bad port %q", port)
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		d.addf(d.at(f+".from"), f+".from", "want the sender's address, got %q: %v", e.From, err)
	}
	if len(e.To) == 0 {
		d.addf(d.at(f+".to"), f+".to", "an e-mail notifier needs at least one recipient")
	}
	for i, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			ff := fmt.Sprintf("%s.to[%d]", f, i)
			d.addf(d.at(ff), ff, "not an address: %q: %v", to, err)
		}
	}
	hasPassword := e.PasswordFile != "" || e.PasswordEnv != ""
	switch {
	case e.Username != "" && !hasPassword:
		d.addf(d.at(f+".username"), f+".username", "a username needs its password: set password_file or password_env")
	case e.Username == "" && hasPassword:
		d.addf(d.at(f+".password_file"), f+".password_file", "a password without a username is never sent: set username")
	}
}
