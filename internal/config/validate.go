package config

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/redact"
)

// validate checks the decoded configuration, each problem at the line of the value it rejects (or of
// the nearest enclosing key when the value is a default).
func (d *decoder) validate(c *Config) {
	d.checkServer(c.Server)
	d.checkDSN("store.dsn", c.Store.DSN)
	if (c.Store.PasswordFile != "" || c.Store.PasswordEnv != "") && !isPostgres(c.Store.DSN) {
		d.addf(d.at("store.password_file"), "store.password_file", "a database password only applies to a postgres:// DSN")
	}
	if r := c.Store.Retention; r < 0 || (r > 0 && r < MinRetention) {
		d.addf(d.at("store.retention"), "store.retention",
			"must be at least %s (or \"off\"), got %s: a shorter one would compact runs that may still be reviewed", MinRetention, r)
	}
	for _, s := range c.Sources.list() {
		d.checkSource("sources."+string(s.name), s.name, *s.src)
	}
	d.checkClassRules(c.RunClasses)
	names := d.checkCatalogue(c)
	cat, err := pcl.NewCatalogue(c.Workflows)
	if err != nil {
		cat = nil // already reported by checkCatalogue
	}
	hint := ""
	if d.present("catalogue") && len(c.Workflows) > 0 {
		hint = " (the catalogue in this file replaces the built-in one)"
	}
	d.checkPolicy(c.Policy, names, cat, hint)
	d.checkLinks(c.Links)
	d.checkAgency(c.Agency)
	d.checkSteering(c.Steering)
	d.checkAccess(c)
	d.checkAlerts(c.Alerts)
	d.checkClock(c.Clock)
	d.checkSimulatedClock(c)
	if c.DataDir == "" {
		d.addf(d.at("data_dir"), "data_dir", "must not be empty")
	}
}

// Validate checks a configuration built or changed in code (command-line flags over a file), with the
// same rules as Check; its problems have no line. Start from Default, Parse or Load: a zero Config has
// no defaults and is refused.
func (c *Config) Validate() error {
	d := newDecoder("configuration")
	d.validate(c)
	if len(d.problems) > 0 {
		return &Error{Problems: d.problems}
	}
	return nil
}

func (d *decoder) positive(field string, v time.Duration) {
	if v <= 0 {
		d.addf(d.at(field), field, "must be positive, got %s", v)
	}
}

func (d *decoder) notNegative(field string, v time.Duration) {
	if v < 0 {
		d.addf(d.at(field), field, "must not be negative, got %s", v)
	}
}

func (d *decoder) checkServer(s Server) {
	if host, port, err := net.SplitHostPort(s.Addr); err != nil {
		d.addf(d.at("server.addr"), "server.addr", "want host:port such as %q: %v", DefaultAddr, err)
	} else if p, err := strconv.Atoi(port); (err != nil && port != "") || p < 0 || p > 65535 {
		d.addf(d.at("server.addr"), "server.addr", "bad port %q", port)
	} else if strings.ContainsAny(host, " /") {
		d.addf(d.at("server.addr"), "server.addr", "bad host %q", host)
	}
	if s.PublicURL != "" {
		d.checkURL("server.public_url", s.PublicURL)
	}
	d.positive("server.read_timeout", s.ReadTimeout)
	d.notNegative("server.write_timeout", s.WriteTimeout)
	d.positive("server.shutdown_timeout", s.ShutdownTimeout)
	if s.MaxBodyBytes <= 0 {
		d.addf(d.at("server.max_body_bytes"), "server.max_body_bytes", "must be positive, got %d", s.MaxBodyBytes)
	}
	for i, p := range s.TrustedProxies {
		f := fmt.Sprintf("server.trusted_proxies[%d]", i)
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err != nil {
			d.addf(d.at(f), f, "want an address or a network such as 10.76.0.0/16, got %q", p)
		}
	}
}

// checkURL wants an absolute http(s) URL without a password.
func (d *decoder) checkURL(field, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		d.addf(d.at(field), field, "bad URL %q: %v", raw, errorsTail(err))
	case u.Scheme != "http" && u.Scheme != "https":
		d.addf(d.at(field), field, "want an http:// or https:// URL, got %q", raw)
	case u.Host == "":
		d.addf(d.at(field), field, "URL %q has no host", raw)
	case urlPassword(raw):
		d.addf(d.at(field), field, "the URL carries a password: secrets are never read from the configuration file; use token_file or token_env")
	}
}

// errorsTail drops url.Error's repetition of the URL.
func errorsTail(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}

// checkDSN wants "sqlite:PATH" or a postgres:// URL without a password.
func (d *decoder) checkDSN(field, dsn string) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		if strings.TrimPrefix(dsn, "sqlite:") == "" {
			d.addf(d.at(field), field, "sqlite: DSN has no path (want sqlite:PATH)")
		}
	case isPostgres(dsn):
		u, err := url.Parse(dsn)
		if err != nil {
			d.addf(d.at(field), field, "bad postgres DSN: %v", errorsTail(err))
		} else if urlPassword(dsn) {
			d.addf(d.at(field), field, "the DSN carries a password: secrets are never read from the configuration file; use password_file or password_env")
		} else if u.Host == "" {
			d.addf(d.at(field), field, "postgres DSN %q has no host", redact.URL(dsn))
		}
	default:
		scheme, _, _ := strings.Cut(dsn, ":")
		d.addf(d.at(field), field, "unknown DSN scheme %q: want sqlite:PATH or postgres://HOST/DB", scheme)
	}
}

// sourceReads says which of url, dir and dsn a source reads from.
func sourceReads(name pcl.Source) (url, dir, dsn bool) {
	switch name {
	case pcl.SourceHarvest:
		return true, true, false
	case pcl.SourceCondDB:
		return true, false, true
	default:
		return true, false, false
	}
}

func (d *decoder) checkSource(field string, name pcl.Source, s Source) {
	readsURL, readsDir, readsDSN := sourceReads(name)
	if s.URL != "" {
		d.checkURL(field+".url", s.URL)
	}
	if s.Dir != "" && !readsDir {
		d.addf(d.at(field+".dir"), field+".dir", "the %s source does not read a directory; set url", name)
	}
	if s.DSN != "" {
		if readsDSN {
			d.checkDSN(field+".dsn", s.DSN)
		} else {
			d.addf(d.at(field+".dsn"), field+".dsn", "the %s source does not read a database; set url", name)
		}
	}
	set := 0
	for _, v := range []string{s.URL, s.Dir, s.DSN} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		d.addf(d.at(field), field, "set only one of url, dir and dsn")
	}
	if s.Enabled && set == 0 {
		var want []string
		for _, w := range []struct {
			ok   bool
			name string
		}{{readsURL, "url"}, {readsDir, "dir"}, {readsDSN, "dsn"}} {
			if w.ok {
				want = append(want, w.name)
			}
		}
		d.addf(d.at(field+".enabled"), field+".enabled", "the source is enabled but has nothing to read: set %s", strings.Join(want, " or "))
	}
	d.positive(field+".interval", s.Interval)
	d.positive(field+".timeout", s.Timeout)
	if !(s.Jitter >= 0 && s.Jitter <= 1) {
		d.addf(d.at(field+".jitter"), field+".jitter", "must be between 0 and 1 (a fraction of the interval), got %g", s.Jitter)
	}
	if s.StaleAfter < 1 {
		d.addf(d.at(field+".stale_after"), field+".stale_after", "must be at least 1 failed poll, got %d", s.StaleAfter)
	}
	for _, k := range []struct {
		key string
		v   time.Duration
	}{{"full_rescan", s.FullRescan}, {"mtime_slack", s.MtimeSlack}} {
		switch {
		case k.v < 0:
			d.addf(d.at(field+"."+k.key), field+"."+k.key, "must not be negative, got %s", k.v)
		case k.v != 0 && name != pcl.SourceHarvest:
			d.addf(d.at(field+"."+k.key), field+"."+k.key, "only the harvest source reads it")
		}
	}
	d.checkNotifications(field, name, s.Notifications)
}

// checkNotifications: only the harvest source reads notifications, and knows two values.
func (d *decoder) checkNotifications(field string, name pcl.Source, v string) {
	key := field + ".notifications"
	_, written := d.seen[key] // empty and not in the file: a configuration built in code, the default
	switch {
	case name != pcl.SourceHarvest && v != "":
		d.addf(d.at(key), key, "only the harvest source reads it")
	case name == pcl.SourceHarvest && v != "auto" && v != "off" && (v != "" || written):
		d.addf(d.at(key), key, `want "auto" or "off", got %q`, v)
	}
}

func (d *decoder) checkClassRules(rules []ClassRule) {
	for i, r := range rules {
		field := fmt.Sprintf("run_classes[%d]", i)
		if strings.TrimSpace(r.Class) == "" {
			d.addf(d.at(field+".class"), field+".class", "every rule needs a class name")
		} else if rest := strings.NewReplacer("{yyyy}", "", "{yy}", "").Replace(r.Class); strings.ContainsAny(rest, "{}") {
			d.addf(d.at(field+".class"), field+".class", "unknown placeholder in %q: only {yy} and {yyyy} are expanded", r.Class)
		}
		for _, re := range []struct{ key, pattern string }{
			{"era", r.Era}, {"hlt_key", r.HLTKey}, {"fill_type", r.FillType}, {"sequence", r.Sequence},
		} {
			if _, err := regexp.Compile(re.pattern); err != nil {
				d.addf(d.at(field+"."+re.key), field+"."+re.key, "bad regexp: %v", err)
			}
		}
		if r.MinBField != nil && *r.MinBField < 0 {
			d.addf(d.at(field+".min_b_field"), field+".min_b_field", "must not be negative (tesla), got %g", *r.MinBField)
		}
	}
}

// checkCatalogue applies pcl.NewCatalogue's rules entry by entry, normalises time types, and returns the
// workflow names the policy may refer to.
func (d *decoder) checkCatalogue(c *Config) map[string]bool {
	names := map[string]bool{}
	inputs := map[string]string{}
	before := len(d.problems)
	for i := range c.Workflows {
		w := &c.Workflows[i]
		field := fmt.Sprintf("catalogue[%d]", i)
		label := w.Name
		if label == "" {
			label = fmt.Sprintf("number %d", i+1)
		}
		switch {
		case w.Name == "":
			d.addf(d.at(field+".name"), field+".name", "every workflow needs a name")
		case names[w.Name]:
			d.addf(d.at(field+".name"), field+".name", "workflow %q is defined twice", w.Name)
		}
		names[w.Name] = true
		if w.Producer == "" {
			d.addf(d.at(field+".producer"), field+".producer", "workflow %s needs its AlCaReco producer", label)
		}
		if len(w.Streams) == 0 {
			d.addf(d.at(field+".streams"), field+".streams", "workflow %s needs at least one express stream", label)
		}
		if len(w.Inputs) == 0 {
			d.addf(d.at(field+".inputs"), field+".inputs", "workflow %s needs at least one input tag", label)
		}
		for j := range w.Inputs {
			in := &w.Inputs[j]
			ifield := fmt.Sprintf("%s.inputs[%d]", field, j)
			if in.Tag == "" {
				d.addf(d.at(ifield+".tag"), ifield+".tag", "every input needs a tag")
			} else if other, dup := inputs[in.Tag]; dup {
				d.addf(d.at(ifield+".tag"), ifield+".tag", "input tag %q is already an input of workflow %s", in.Tag, other)
			} else {
				inputs[in.Tag] = w.Name
			}
			if in.TimeType == "" {
				in.TimeType = pcl.TimeRun // most PCL tags are run-based (cms-interfaces.md §5)
			}
			if tt, err := pcl.ParseTimeType(string(in.TimeType)); err != nil {
				d.addf(d.at(ifield+".time_type"), ifield+".time_type", "%v", err)
			} else {
				in.TimeType = tt
			}
			for _, tag := range slices.Sorted(maps.Keys(in.Gates)) {
				if !slices.Contains(in.Destinations, tag) {
					f := ifield + ".gates." + tag
					d.addf(d.at(f), f, "%q is not one of this input's destinations %v", tag, in.Destinations)
				}
			}
		}
	}
	if len(d.problems) == before {
		// pcl is the authority; if it disagrees with the checks above, say so rather than fail later.
		if _, err := pcl.NewCatalogue(c.Workflows); err != nil {
			d.addf(d.at("catalogue"), "catalogue", "%v", err)
		}
	}
	return names
}

func (d *decoder) checkPolicy(p pcl.Policy, workflows map[string]bool, cat *pcl.Catalogue, hint string) {
	before := len(d.problems)
	for i, c := range p.Classes {
		field := fmt.Sprintf("policy.classes[%d]", i)
		if c.Pattern == "" {
			d.addf(d.at(field+".pattern"), field+".pattern", "every class needs a pattern (a shell pattern such as \"Collisions*\")")
		} else if _, err := path.Match(c.Pattern, ""); err != nil {
			d.addf(d.at(field+".pattern"), field+".pattern", "bad pattern %q: %v", c.Pattern, err)
		}
		for j, w := range c.Required {
			if !workflows[w] {
				d.addf(d.at(fmt.Sprintf("%s.required[%d]", field, j)), fmt.Sprintf("%s.required[%d]", field, j), "workflow %q is not in the catalogue%s", w, hint)
			}
		}
		for j, w := range c.NoPayloadOK {
			if w != "*" && !workflows[w] {
				d.addf(d.at(fmt.Sprintf("%s.no_payload_ok[%d]", field, j)), fmt.Sprintf("%s.no_payload_ok[%d]", field, j), "workflow %q is not in the catalogue%s", w, hint)
			}
		}
		for j, w := range c.RequirePayload {
			if w != "*" && !workflows[w] {
				d.addf(d.at(fmt.Sprintf("%s.require_payload[%d]", field, j)), fmt.Sprintf("%s.require_payload[%d]", field, j), "workflow %q is not in the catalogue%s", w, hint)
			}
		}
		d.positive(field+".workflow_deadline", c.WorkflowDeadline)
		d.positive(field+".run_deadline", c.RunDeadline)
		if c.WorkflowDeadline > 0 && c.RunDeadline > 0 && c.RunDeadline < c.WorkflowDeadline {
			f := field + ".run_deadline"
			if !d.present(f) {
				f = field + ".workflow_deadline"
			}
			d.addf(d.at(f), f, "run_deadline %s is before workflow_deadline %s: the run would time out before its workflows could", c.RunDeadline, c.WorkflowDeadline)
		}
		if c.OnTimeout != pcl.OnTimeoutRelease && c.OnTimeout != pcl.OnTimeoutHold {
			d.addf(d.at(field+".on_timeout"), field+".on_timeout", "must be %q or %q, got %q", pcl.OnTimeoutRelease, pcl.OnTimeoutHold, c.OnTimeout)
		}
		d.notNegative(field+".min_run_length", c.MinRunLength)
		if !(c.AtRiskFraction >= 0 && c.AtRiskFraction <= 1) || math.IsNaN(c.AtRiskFraction) {
			d.addf(d.at(field+".at_risk_fraction"), field+".at_risk_fraction", "must be between 0 and 1, got %g", c.AtRiskFraction)
		}
	}
	if len(d.problems) == before && cat != nil {
		// pcl is the authority; if it disagrees with the checks above, say so rather than fail later.
		if err := p.Validate(cat); err != nil {
			d.addf(d.at("policy"), "policy", "%v", err)
		}
	}
}

func (d *decoder) checkLinks(l Links) {
	for _, link := range []struct{ key, v string }{
		{"conddb_browser", l.CondDBBrowser}, {"upload_log", l.UploadLog}, {"dqm_gui", l.DQMGUI},
		{"oms", l.OMS}, {"run_registry", l.RunRegistry},
	} {
		if link.v != "" || !d.present("links."+link.key) {
			d.checkURL("links."+link.key, link.v) // an explicit "" hides the link
		}
	}
}

func (d *decoder) checkAgency(a Agency) {
	if a.ReconcileBatch <= 0 {
		d.addf(d.at("agency.reconcile_batch"), "agency.reconcile_batch", "must be positive, got %d", a.ReconcileBatch)
	}
	d.positive("agency.resync_interval", a.ResyncInterval)
	d.positive("agency.lookback", a.Lookback)
	// The leader renews every third of the TTL through a database round trip: below a second, a slow
	// commit would depose a healthy leader; above ten minutes, a dead leader stops the agency that long.
	if a.LeaseTTL < time.Second || a.LeaseTTL > 10*time.Minute {
		d.addf(d.at("agency.lease_ttl"), "agency.lease_ttl", "must be between 1s and 10m, got %s", a.LeaseTTL)
	}
}

var targetName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (d *decoder) checkSteering(st Steering) {
	seen := map[string]bool{}
	for i, t := range st.Targets {
		f := fmt.Sprintf("steering.targets[%d]", i)
		if !targetName.MatchString(t.Name) {
			d.addf(d.at(f+".name"), f+".name", "want a name of letters, digits, '-' and '_', got %q", t.Name)
		} else if seen[t.Name] {
			d.addf(d.at(f+".name"), f+".name", "target %q is named twice", t.Name)
		}
		seen[t.Name] = true
		switch t.Type {
		case "webhook":
			if t.URL == "" {
				d.addf(d.at(f+".url"), f+".url", "a webhook needs a url")
			} else {
				d.checkURL(f+".url", t.URL)
			}
			if t.SecretFile == "" && t.SecretEnv == "" {
				d.addf(d.at(f+".secret_file"), f+".secret_file", "a webhook needs a shared secret: set secret_file or secret_env")
			}
			if t.DSN != "" || t.Table != "" {
				d.addf(d.at(f+".dsn"), f+".dsn", "dsn and table are for sql targets")
			}
		case "sql":
			if t.DSN == "" {
				d.addf(d.at(f+".dsn"), f+".dsn", "an sql target needs a dsn (postgres://... or sqlite:PATH)")
			} else {
				d.checkDSN(f+".dsn", t.DSN)
			}
			if t.URL != "" {
				d.addf(d.at(f+".url"), f+".url", "url is for webhook targets")
			}
		default:
			d.addf(d.at(f+".type"), f+".type", "want webhook or sql, got %q", t.Type)
		}
		if t.Timeout < 0 {
			d.addf(d.at(f+".timeout"), f+".timeout", "must not be negative, got %s", t.Timeout)
		}
		if t.MaxAttempts < 0 {
			d.addf(d.at(f+".max_attempts"), f+".max_attempts", "must not be negative, got %d", t.MaxAttempts)
		}
	}
}

func (d *decoder) checkClock(c Clock) {
	if c.Speed == 0 {
		if !c.Epoch.IsZero() || !c.WallStart.IsZero() {
			d.addf(d.at("clock.speed"), "clock.speed", "epoch and wall_start need a speed (0 is the wall clock)")
		}
		return
	}
	if c.Speed < 0 || c.Speed > 1e6 || math.IsNaN(c.Speed) {
		d.addf(d.at("clock.speed"), "clock.speed", "must be between 0 and 1000000, got %g", c.Speed)
	}
	if c.Epoch.IsZero() {
		d.addf(d.at("clock.epoch"), "clock.epoch", "a simulated clock needs the simulated time it started at (RFC 3339)")
	}
	if c.WallStart.IsZero() {
		d.addf(d.at("clock.wall_start"), "clock.wall_start", "a simulated clock needs the wall time it started at (RFC 3339)")
	}
}

// checkSimulatedClock refuses a simulated clock with sources that are not on this machine: a scaled
// clock is for watching the simulator (spyagency simulate --print-config writes one), and against real
// CMS systems it would stamp decisions, deadlines and token expiries in a time that is not theirs.
func (d *decoder) checkSimulatedClock(c *Config) {
	if c.Clock.Speed <= 0 {
		return
	}
	var far []string
	for _, s := range c.Sources.list() {
		if !s.src.Enabled {
			continue
		}
		field := "sources." + string(s.name)
		switch {
		case s.src.URL != "" && !loopbackURL(s.src.URL):
			far = append(far, fmt.Sprintf("%s.url %s", field, redact.URL(s.src.URL)))
		case isPostgres(s.src.DSN) && !loopbackURL(s.src.DSN):
			far = append(far, fmt.Sprintf("%s.dsn %s", field, redact.URL(s.src.DSN)))
		}
	}
	if len(far) > 0 {
		d.addf(d.at("clock.speed"), "clock.speed", "a simulated clock (speed %g) is only for a simulated CMS on this machine, but %s %s not on loopback; leave the clock block out to use the wall clock",
			c.Clock.Speed, strings.Join(far, ", "), map[bool]string{true: "is", false: "are"}[len(far) == 1])
	}
}

// loopbackURL says whether a URL's host is this machine: localhost or a loopback address.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
