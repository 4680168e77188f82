package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

func TestDefaultIsValidAndRoundTrips(t *testing.T) {
	t.Parallel()
	c := Default()
	if got := c.Sources.Enabled(); len(got) != 0 {
		t.Errorf("default enables sources %v; nothing is configured to read", got)
	}
	if want := "sqlite:" + filepath.Join(c.DataDir, "spyagency.db"); c.Store.DSN != want {
		t.Errorf("default DSN %q, want %q", c.Store.DSN, want)
	}
	if c.DataDir == "" || filepath.Base(c.DataDir) != "spyagency" {
		t.Errorf("default data dir %q, want a spyagency folder", c.DataDir)
	}
	if !reflect.DeepEqual(c.Policy, pcl.DefaultPolicy()) {
		t.Errorf("default policy differs from pcl.DefaultPolicy")
	}
	if !reflect.DeepEqual(c.Workflows, pcl.DefaultWorkflows()) {
		t.Errorf("default catalogue differs from pcl.DefaultWorkflows")
	}
	cat, err := c.Catalogue()
	if err != nil {
		t.Fatalf("Catalogue: %v", err)
	}
	if err := c.Policy.Validate(cat); err != nil {
		t.Errorf("default policy does not validate: %v", err)
	}
	// What String prints must be a valid configuration that means the same.
	back, err := Parse("printed.yaml", []byte(c.String()))
	if err != nil {
		t.Fatalf("the printed default configuration does not parse: %v\n%s", err, c.String())
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("printed and re-read default differs:\n%s\nvs\n%s", back, c)
	}
}

func TestEmptyFileIsTheDefault(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "\n", "# nothing\n", "---\n", "~\n", "{}\n", "policy:\ncatalogue: []\n"} {
		c, err := Parse("empty.yaml", []byte(src))
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("%q: differs from Default():\n%s", src, c)
		}
	}
	if _, err := Load(filepath.Join("testdata", "empty.yaml")); err != nil {
		t.Errorf("empty.yaml: %v", err)
	}
}

func TestFullExample(t *testing.T) {
	t.Parallel()
	c, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wantServer := Server{Addr: "0.0.0.0:8443", PublicURL: "https://spyagency.web.cern.ch", ReadTimeout: 15 * time.Second,
		WriteTimeout: time.Minute, ShutdownTimeout: 10 * time.Second, MaxBodyBytes: 1 << 20, TrustedProxies: []string{"127.0.0.1", "10.76.0.0/16"}}
	if !reflect.DeepEqual(c.Server, wantServer) {
		t.Errorf("server = %+v, want %+v", c.Server, wantServer)
	}
	wantStore := Store{DSN: "sqlite:/var/lib/spyagency/spyagency.db", Retention: 2160 * time.Hour}
	if c.Store != wantStore {
		t.Errorf("store = %+v, want %+v", c.Store, wantStore)
	}
	if c.DataDir != "/var/lib/spyagency" {
		t.Errorf("data_dir = %q", c.DataDir)
	}
	wantOMS := Source{Enabled: true, URL: "https://cmsoms.cern.ch/agg/api/v1/", Interval: time.Minute, Jitter: 0.1,
		Timeout: 30 * time.Second, StaleAfter: 3, TokenFile: "/etc/spyagency/oms-client-secret", TokenEnv: "SPYAGENCY_OMS_CLIENT_SECRET"}
	if c.Sources.OMS != wantOMS {
		t.Errorf("oms = %+v, want %+v", c.Sources.OMS, wantOMS)
	}
	wantDQM := Source{Enabled: false, URL: "https://cmsweb.cern.ch/dqm/offline/", Interval: 10 * time.Minute, Jitter: 0.2,
		Timeout: time.Minute, StaleAfter: 5}
	if c.Sources.DQM != wantDQM {
		t.Errorf("dqm = %+v, want %+v", c.Sources.DQM, wantDQM)
	}
	if c.Sources.Tier0.Interval != 5*time.Minute || c.Sources.Harvest.Dir != "/eos/cms/store/express/tier0_harvest" ||
		c.Sources.CondDB.DSN != "sqlite:/var/lib/spyagency/conddb-mirror.db" || c.Sources.Dropbox.TokenEnv != "SPYAGENCY_DROPBOX_TOKEN" {
		t.Errorf("sources = %+v", c.Sources)
	}
	wantEnabled := []pcl.Source{pcl.SourceOMS, pcl.SourceTier0, pcl.SourceHarvest, pcl.SourceDropbox, pcl.SourceCondDB}
	if got := c.Sources.Enabled(); !reflect.DeepEqual(got, wantEnabled) {
		t.Errorf("enabled sources %v, want %v", got, wantEnabled)
	}
	if len(c.RunClasses) != 5 || c.RunClasses[2].Sequence != "^GLOBAL-RUN$" || c.RunClasses[3].StableBeam == nil ||
		!*c.RunClasses[3].StableBeam || c.RunClasses[3].MinBField == nil || *c.RunClasses[3].MinBField != 0 {
		t.Errorf("run_classes = %+v", c.RunClasses)
	}
	// The example writes out the built-in catalogue; it must stay the same as the code's.
	if !reflect.DeepEqual(c.Workflows, pcl.DefaultWorkflows()) {
		t.Errorf("the example's catalogue differs from pcl.DefaultWorkflows: update testdata/full.yaml")
	}
	if len(c.Policy.Classes) != 4 {
		t.Fatalf("policy classes = %d, want 4", len(c.Policy.Classes))
	}
	hi := c.Policy.Classes[2]
	if hi.Pattern != "HI*" || hi.WorkflowDeadline != 24*time.Hour || hi.OnTimeout != pcl.OnTimeoutHold ||
		hi.MinRunLength != 10*time.Minute || hi.AtRiskFraction != 0.8 || !hi.InOrder {
		t.Errorf("policy HI* = %+v", hi)
	}
	if got := c.Policy.For("Cosmics25").Required; !reflect.DeepEqual(got, []string{"SiStripQuality"}) {
		t.Errorf("Cosmics25 requires %v", got)
	}
	if c.Links != DefaultLinks() {
		t.Errorf("links = %+v, want the defaults", c.Links)
	}
	wantAccess := Access{Read: "authenticated", Pull: "token", FailedAuthLimit: 10, FailedAuthWindow: time.Minute,
		OIDC: OIDC{Issuer: "https://auth.cern.ch/auth/realms/cern", ClientID: "cms-spyagency",
			ClientSecretFile: "/etc/spyagency/oidc-client-secret", ClientSecretEnv: "SPYAGENCY_OIDC_CLIENT_SECRET",
			RedirectURL: "https://spyagency.web.cern.ch/auth/callback", Scopes: []string{"openid", "profile", "email"},
			UserClaim: "preferred_username", RolesClaim: "cern_roles",
			Roles:      OIDCRoles{Viewer: []string{"pcl-viewer"}, Operator: []string{"pcl-operator"}, Admin: []string{"pcl-admin"}},
			SessionTTL: 12 * time.Hour}}
	if !reflect.DeepEqual(c.Access, wantAccess) {
		t.Errorf("access = %+v, want %+v", c.Access, wantAccess)
	}
	wantAgency := Agency{ReconcileBatch: 200, ResyncInterval: 5 * time.Minute, Lookback: 336 * time.Hour, LeaseTTL: 15 * time.Second}
	if c.Agency != wantAgency {
		t.Errorf("agency = %+v, want %+v", c.Agency, wantAgency)
	}
	file, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(ExampleYAML()) != string(file) {
		t.Error("ExampleYAML differs from testdata/full.yaml")
	}
}

// commentedOut are the keys a production file leaves out: the simulated clock, and the password of a
// PostgreSQL store (the example's store is SQLite).
var commentedOut = map[string][]string{
	"clock":               {"clock", "speed", "epoch", "wall_start"},
	"store.password_file": {"password_file"},
	"store.password_env":  {"password_env"},
}

// TestFullExampleSetsEveryField keeps the example complete: every key the configuration knows appears in
// it, set, or commented out where a production file leaves it out.
func TestFullExampleSetsEveryField(t *testing.T) {
	t.Parallel()
	d := newDecoder("full.yaml")
	c := preDefaults()
	root := d.parseYAML(ExampleYAML())
	d.decode("", root, reflect.ValueOf(c).Elem())
	var missing []string
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if path != "" && !d.present(path) {
			missing = append(missing, path)
			return
		}
		switch {
		case typ == durationType, typ == timeType:
		case typ.Kind() == reflect.Struct:
			for i := range typ.NumField() {
				if k := fieldKey(typ.Field(i)); k != "" {
					walk(joinPath(path, k), typ.Field(i).Type)
				}
			}
		case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Struct:
			walk(path+"[0]", typ.Elem())
		}
	}
	walk("", reflect.TypeFor[Config]())
	// Rules set different conditions and sources read url, dir or dsn: each key must appear somewhere
	// among the rules, and among the sources.
	var realMissing []string
	for _, m := range missing {
		switch {
		case commentedOut[m] != nil:
			// A production file does not set these; the example shows them commented out.
			for _, key := range commentedOut[m] {
				if !regexp.MustCompile(`(?m)^\s*#\s+` + key + `:(\s|$)`).Match(ExampleYAML()) {
					realMissing = append(realMissing, m+" (not even commented out: "+key+")")
				}
			}
		case strings.HasPrefix(m, "run_classes[0]."):
			if !presentInAny(d, "run_classes[%d]."+strings.TrimPrefix(m, "run_classes[0]."), 5) {
				realMissing = append(realMissing, m)
			}
		case strings.HasPrefix(m, "steering.targets[0]."):
			// A webhook and an sql target use different keys: each key must appear in some target.
			if !presentInAny(d, "steering.targets[%d]."+strings.TrimPrefix(m, "steering.targets[0]."), 5) {
				realMissing = append(realMissing, m)
			}
		case strings.HasPrefix(m, "alerts.rules."):
			// Each rule's block has the same keys, and a threshold only where the rule reads one:
			// each key must appear among the rules.
			key := m[strings.LastIndex(m, ".")+1:]
			found := false
			for _, rule := range AlertRuleNames {
				found = found || d.present("alerts.rules."+rule+"."+key)
			}
			if !found {
				realMissing = append(realMissing, m)
			}
		case strings.HasPrefix(m, "sources."):
			key := m[strings.LastIndex(m, ".")+1:]
			found := false
			for _, src := range pcl.Sources {
				found = found || d.present("sources."+string(src)+"."+key)
			}
			if !found {
				realMissing = append(realMissing, m)
			}
		default:
			realMissing = append(realMissing, m)
		}
	}
	if len(realMissing) > 0 {
		t.Errorf("testdata/full.yaml does not set %v", realMissing)
	}
}

func TestEnabledByDefaultOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	c, err := Parse("minimal.yaml", mustRead(t, "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[pcl.Source]bool{pcl.SourceTier0: true, pcl.SourceHarvest: true, pcl.SourceDQM: false, pcl.SourceOMS: false}
	for src, on := range want {
		s, ok := c.Sources.ByName(src)
		if !ok || s.Enabled != on {
			t.Errorf("%s enabled = %v, want %v", src, s.Enabled, on)
		}
	}
	if c.Store.DSN != "sqlite:/tmp/spyagency-test/spyagency.db" {
		t.Errorf("DSN %q does not follow data_dir", c.Store.DSN)
	}
	// A policy class that leaves fields out takes them from the default policy.
	got := c.Policy.Classes
	if len(got) != 1 || got[0].WorkflowDeadline != 2*time.Hour || got[0].RunDeadline != 4*time.Hour ||
		got[0].OnTimeout != pcl.OnTimeoutRelease || !got[0].InOrder || got[0].AtRiskFraction != 0.75 ||
		got[0].MinRunLength != 5*time.Minute {
		t.Errorf("policy = %+v", got)
	}
}

func TestMergeKeysAndAliases(t *testing.T) {
	t.Parallel()
	src := `
policy:
  classes:
    - &collisions
      pattern: Collisions*
      required: &core [SiStripGains, SiPixelAliHGComb]
      workflow_deadline: 10h
      run_deadline: 30h
    - <<: *collisions
      pattern: HI*
      run_deadline: 40h
    - pattern: "*"
      required: *core
`
	c, err := Parse("merge.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	hi := c.Policy.Classes[1]
	if hi.Pattern != "HI*" || hi.RunDeadline != 40*time.Hour || hi.WorkflowDeadline != 10*time.Hour ||
		!reflect.DeepEqual(hi.Required, []string{"SiStripGains", "SiPixelAliHGComb"}) {
		t.Errorf("merged class = %+v: explicit keys must win over merged ones, the rest come from the merge", hi)
	}
	if got := c.Policy.Classes[2].Required; len(got) != 2 {
		t.Errorf("aliased list = %v", got)
	}
	// A key given twice is an error even when a merge is around.
	probs := Check("merge.yaml", []byte(src+"      pattern: again\n"))
	if len(probs) != 1 || probs[0].Line != 14 || probs[0].Field != "policy.classes[2].pattern" {
		t.Errorf("problems = %v, want policy.classes[2].pattern given twice on line 14", probs)
	}
}

// TestAliasBombIsRefused: aliases let a few lines stand for millions of values; the walk must give up
// with a problem instead of spending minutes.
func TestAliasBombIsRefused(t *testing.T) {
	t.Parallel()
	hundred := func(s string) string { return "[" + strings.TrimSuffix(strings.Repeat(s+", ", 100), ", ") + "]" }
	src := "d: &d " + hundred("x") + "\n" +
		"i: &i {tag: t, destinations: *d}\n" +
		"w: &w {name: w, producer: p, streams: [Express], inputs: " + hundred("*i") + "}\n" +
		"catalogue: " + hundred("*w") + "\n"
	// No wall-clock bound here (it failed once under load): an expansion that were not refused would
	// not end, and go test's timeout would say so.
	probs := Check("bomb.yaml", []byte(src))
	found := false
	for _, p := range probs {
		found = found || strings.Contains(p.Message, "expands to more than")
	}
	if !found {
		t.Errorf("no refusal of the expansion among %d problems", len(probs))
	}
	if _, err := Parse("bomb.yaml", []byte(src)); err == nil {
		t.Error("Parse accepted the bomb")
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join("testdata", "broken_policy.yaml")
	_, err = Load(path)
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
		t.Fatalf("Load of a broken file: %v, want *Error", err)
	}
	if !strings.Contains(err.Error(), path+":7:7: policy.classes[0].workflow_deadline: must be positive") {
		t.Errorf("error does not name file, line and field:\n%v", err)
	}
}

func TestProblemString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "spyagency.yaml", Line: 12, Column: 5, Field: "policy.classes[0].workflow_deadline", Message: "must be positive"},
			"spyagency.yaml:12:5: policy.classes[0].workflow_deadline: must be positive"},
		{Problem{File: "a.yaml", Line: 3, Message: "YAML syntax: x"}, "a.yaml:3: YAML syntax: x"},
		{Problem{File: "a.yaml", Field: "policy", Message: "m"}, "a.yaml: policy: m"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func presentInAny(d *decoder, format string, n int) bool {
	for i := range n {
		if d.present(fmt.Sprintf(format, i)) {
			return true
		}
	}
	return false
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestValidateAfterOverrides(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default does not validate: %v", err)
	}
	c.Store.DSN = "mysql://x"
	c.Server.Addr = "nope"
	err := c.Validate()
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 2 || cerr.Problems[0].Field != "server.addr" || cerr.Problems[1].Field != "store.dsn" {
		t.Errorf("Validate = %v, want server.addr and store.dsn refused", err)
	}
	if probs := Check("l.yaml", []byte("links:\n  dqm_gui: \"\"\n")); len(probs) != 0 {
		t.Errorf("an empty link must be allowed (it hides the link): %v", probs)
	}
}

// TestReferenceDocumentsEveryKey keeps docs/configuration.md complete: every key path appears in it, written as
// `sources.<name>.interval`, `policy.classes[i].pattern`, `catalogue[i].inputs[j].tag`.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	var walk func(path string, typ reflect.Type, depth int)
	walk = func(path string, typ reflect.Type, depth int) {
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch {
		case typ == durationType || typ == timeType || typ.Kind() != reflect.Struct && typ.Kind() != reflect.Slice:
			paths = append(paths, path)
		case typ.Kind() == reflect.Slice && typ.Elem().Kind() != reflect.Struct:
			paths = append(paths, path)
		case typ.Kind() == reflect.Slice:
			walk(path+"["+string(rune('i'+depth))+"]", typ.Elem(), depth+1)
		case typ == reflect.TypeFor[AlertRules]():
			// One block per rule, all alike: documented once, as alerts.rules.<rule>.<key>.
			rule := reflect.TypeFor[AlertRule]()
			for i := range rule.NumField() {
				walk(path+".<rule>."+fieldKey(rule.Field(i)), rule.Field(i).Type, depth)
			}
		case typ == reflect.TypeFor[Source]():
			for i := range typ.NumField() {
				walk(path[:strings.LastIndex(path, ".")]+".<name>."+fieldKey(typ.Field(i)), typ.Field(i).Type, depth)
			}
		default:
			for i := range typ.NumField() {
				if k := fieldKey(typ.Field(i)); k != "" {
					walk(joinPath(path, k), typ.Field(i).Type, depth)
				}
			}
		}
	}
	walk("", reflect.TypeFor[Config](), 0)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	if len(paths) < 50 {
		t.Fatalf("only %d key paths found: the walk is broken", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(string(doc), "`"+p+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", p)
		}
	}
}

func TestStoreRetention(t *testing.T) {
	t.Parallel()
	if got := Default().Store.Retention; got != 90*24*time.Hour {
		t.Errorf("default retention %s, want 90 days", got)
	}
	for _, tc := range []struct {
		value string
		want  time.Duration
		err   string
	}{
		{"off", 0, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"720h", 720 * time.Hour, ""},
		{"1h", 0, "store.retention: must be at least 24h0m0s"},
		{"-24h", 0, "store.retention: must be at least 24h0m0s"},
		{"90", 0, "store.retention: duration \"90\" has no unit"},
		{"ninety days", 0, "store.retention: bad duration"},
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte("store:\n  retention: "+tc.value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("retention %q: error %v, want one containing %q", tc.value, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("retention %q: %v", tc.value, err)
			continue
		}
		if c.Store.Retention != tc.want {
			t.Errorf("retention %q = %s, want %s", tc.value, c.Store.Retention, tc.want)
		}
	}
}
