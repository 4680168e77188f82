package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/metrics"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web/openapi"
)

const root = "../.."

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkConfig fails the test for every problem `config check` finds in data.
func checkConfig(t *testing.T, name string, data []byte) *config.Config {
	t.Helper()
	problems := config.Check(name, data)
	for _, p := range problems {
		t.Errorf("%s", p)
	}
	if config.Errors(problems) > 0 {
		return nil
	}
	cfg, err := config.Parse(name, data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cfg
}

func TestExamplesPassConfigCheck(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(t, filepath.Base(f), data)
	}
}

// stage is one FROM of a Dockerfile with its instructions.
type stage struct {
	from, name string
	lines      []string
}

func dockerStages(t *testing.T) []stage {
	t.Helper()
	var out []stage
	sc := bufio.NewScanner(bytes.NewReader(read(t, "Dockerfile")))
	cont := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cont += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, cont = cont+line, ""
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			s := stage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				s.name = f[3]
			}
			out = append(out, s)
			continue
		}
		if len(out) == 0 {
			t.Fatalf("Dockerfile: %q before the first FROM", line)
		}
		out[len(out)-1].lines = append(out[len(out)-1].lines, line)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := dockerStages(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a build stage and a run stage", len(stages))
	}
	build, run := stages[0], stages[len(stages)-1]
	joined := strings.Join(build.lines, "\n")
	if !strings.Contains(joined, "CGO_ENABLED=0") || !strings.Contains(joined, "./cmd/spyagency") {
		t.Errorf("the build stage does not build ./cmd/spyagency statically:\n%s", joined)
	}
	if run.from != "scratch" && !strings.Contains(run.from, "distroless") {
		t.Errorf("the run stage is FROM %s: want an empty base", run.from)
	}
	var user, entry string
	var copied []string
	for _, l := range run.lines {
		f := strings.Fields(l)
		switch strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			var argv []string
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(l, f[0]))), &argv); err != nil || len(argv) == 0 {
				t.Fatalf("ENTRYPOINT %q is not an exec form: %v", l, err)
			}
			entry = argv[0]
		case "COPY":
			copied = append(copied, f[len(f)-1])
		case "RUN", "ADD":
			t.Errorf("the run stage has %s: an empty base runs nothing but the binary (%q)", f[0], l)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric user that is not root", user)
	}
	if entry == "" || !slices.Contains(copied, entry) {
		t.Errorf("ENTRYPOINT %q is not a file the run stage copies (%v)", entry, copied)
	}
	if b := string(read(t, "Dockerfile")); regexp.MustCompile(`(?i)\b(curl|wget)\b|ADD\s+https?://`).MatchString(b) {
		t.Error("the Dockerfile fetches from the network outside the Go module proxy")
	}
}

// TestBuildsWithoutCgo: every package the binary is built from compiles with CGO_ENABLED=0, as the
// Dockerfile builds it, so the binary links statically and starts on an empty base. (go list answers in
// seconds where a build without cgo would recompile everything; the go command links a cgo-free binary
// statically on Linux.)
func TestBuildsWithoutCgo(t *testing.T) {
	t.Parallel()
	list := func(cgo, format string) []string {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", "-e", "-f", format, "./cmd/spyagency")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("CGO_ENABLED=%s go list: %v", cgo, err)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	// Without cgo every package must still build.
	pkgs := list("0", "{{.ImportPath}}\t{{if .Error}}{{.Error}}{{end}}")
	for _, line := range pkgs {
		if path, e, _ := strings.Cut(line, "\t"); e != "" {
			t.Errorf("%s does not build without cgo: %s", path, e)
		}
	}
	if len(pkgs) < 50 {
		t.Fatalf("only %d packages listed", len(pkgs))
	}
	// With cgo, only the standard library may use it (net, os/user and runtime/cgo have pure-Go
	// twins); a dependency with C files (a cgo SQLite driver) would build without them into a stub.
	for _, line := range list("1", "{{.ImportPath}}\t{{.Standard}}\t{{len .CgoFiles}}") {
		f := strings.Split(line, "\t")
		if len(f) == 3 && f[1] == "false" && f[2] != "0" {
			t.Errorf("%s has cgo files: the static binary would lack them", f[0])
		}
	}
}

// unit reads a systemd unit: section → key → values (a key may repeat).
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(read(t, path)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: %q is not key=value in a section", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	u := unit(t, "deploy/systemd/spyagency.service")
	svc := u["Service"]
	start := svc["ExecStart"]
	if len(start) != 1 || !strings.HasSuffix(strings.Fields(start[0])[0], "/spyagency") || !strings.Contains(start[0], " serve --config ") {
		t.Errorf("ExecStart %v: want spyagency serve --config FILE", start)
	}
	cfg := strings.Fields(start[0])[3]
	checked := false
	for _, pre := range svc["ExecStartPre"] {
		checked = checked || strings.Contains(pre, "config check "+cfg)
	}
	if !checked {
		t.Errorf("no ExecStartPre checks %s before starting", cfg)
	}
	if svc["KillSignal"][0] != "SIGTERM" {
		t.Errorf("KillSignal %v", svc["KillSignal"])
	}
	stop, err := time.ParseDuration(strings.TrimSpace(svc["TimeoutStopSec"][0]) + "s")
	if err != nil || stop <= config.Default().Server.ShutdownTimeout {
		t.Errorf("TimeoutStopSec %v: must exceed the server's shutdown timeout (%v)", svc["TimeoutStopSec"], config.Default().Server.ShutdownTimeout)
	}
	for _, k := range []string{"NoNewPrivileges", "ProtectSystem", "DynamicUser"} {
		if len(svc[k]) == 0 {
			t.Errorf("the unit lacks %s", k)
		}
	}
	if u["Install"]["WantedBy"] == nil {
		t.Error("no [Install] WantedBy: systemctl enable would do nothing")
	}
}

type manifest struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		To struct {
			Name string `yaml:"name"`
		} `yaml:"to"`
	} `yaml:"spec"`
	StringData map[string]string `yaml:"stringData"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type podSpec struct {
	TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		StartupProbe   *probe `yaml:"startupProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			ReadOnlyRootFilesystem   bool `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation bool `yaml:"allowPrivilegeEscalation"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

func manifests(t *testing.T, path string) []manifest {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(read(t, path)))
	var out []manifest
	for {
		var m manifest
		if err := dec.Decode(&m); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("%s: %v", path, err)
		}
		if m.Kind == "" {
			t.Fatalf("%s: a document without a kind", path)
		}
		out = append(out, m)
	}
}

// The probes' and the scraper's paths, as the server documents them.
func served(t *testing.T, path string) bool {
	t.Helper()
	ops, err := openapi.Operations()
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(ops, openapi.Operation{Method: "GET", Path: path})
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	cfg, byKind := checkWorkload(t, "deploy/kubernetes/spyagency.yaml", "StatefulSet", 1)
	if cfg != nil && !strings.HasPrefix(cfg.Store.DSN, "sqlite:") {
		t.Errorf("the single replica's store %q: want SQLite", cfg.Store.DSN)
	}
	route := manifests(t, "deploy/kubernetes/openshift-route.yaml")
	if len(route) != 1 || route[0].Kind != "Route" || route[0].Spec.To.Name != byKind["Service"].Metadata.Name {
		t.Errorf("the OpenShift route does not point at the service: %+v", route)
	}
}

// TestReplicatedManifests: the replicated deployment runs two replicas on PostgreSQL with a leader
// lease, the database password among the mounted secrets, and its configuration is
// examples/replicated.yaml with the secrets where the Secret is mounted.
func TestReplicatedManifests(t *testing.T) {
	t.Parallel()
	cfg, byKind := checkWorkload(t, "deploy/kubernetes/spyagency-replicated.yaml", "Deployment", 2)
	if cfg == nil {
		return
	}
	if !strings.HasPrefix(cfg.Store.DSN, "postgres://") || cfg.Store.PasswordFile == "" || cfg.Agency.LeaseTTL <= 0 {
		t.Errorf("store %+v, lease_ttl %v: want PostgreSQL, its password from a file, a lease", cfg.Store, cfg.Agency.LeaseTTL)
	}
	if u, err := url.Parse(cfg.Store.DSN); err != nil || u.User == nil {
		t.Errorf("DSN %q: want a user: %v", cfg.Store.DSN, err)
	} else if _, set := u.User.Password(); set {
		t.Errorf("a password in the DSN %q", cfg.Store.DSN)
	}
	if _, ok := byKind["PodDisruptionBudget"]; !ok {
		t.Error("no PodDisruptionBudget: a node drain could stop both replicas at once")
	}
	example := checkConfig(t, "examples/replicated.yaml", read(t, "examples/replicated.yaml"))
	if example == nil {
		return
	}
	want := strings.ReplaceAll(string(read(t, "examples/replicated.yaml")), "/etc/spyagency/", "/etc/spyagency/secrets/")
	got := byKind["ConfigMap"].Data["spyagency.yaml"]
	if i := strings.Index(want, "server:"); i < 0 || !strings.Contains(got, want[i:]) {
		t.Error("the ConfigMap's configuration is not examples/replicated.yaml (from server: on, secrets under /etc/spyagency/secrets/)")
	}
}

// checkWorkload checks a manifest of a ConfigMap, a Secret, a workload of kind with replicas and a
// Service: the configuration passes `config check`, the probes, ports, secrets and writable places
// agree with it. It returns the configuration (nil when it failed) and the documents by kind.
func checkWorkload(t *testing.T, path, kind string, replicas int) (*config.Config, map[string]manifest) {
	t.Helper()
	docs := manifests(t, path)
	byKind := map[string]manifest{}
	for _, m := range docs {
		byKind[m.Kind] = m
	}
	for _, k := range []string{"ConfigMap", "Secret", kind, "Service"} {
		if _, ok := byKind[k]; !ok {
			t.Fatalf("no %s in %s", k, path)
		}
	}
	cfg := checkConfig(t, path+": ConfigMap spyagency.yaml", []byte(byKind["ConfigMap"].Data["spyagency.yaml"]))
	if cfg == nil {
		return nil, byKind
	}
	set := byKind[kind]
	if r := set.Spec.Replicas; r == nil || *r != replicas {
		t.Errorf("%s: replicas %v, want %d", path, r, replicas)
	}
	pod := set.Spec.Template.Spec
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("the pod may run as root: %+v", pod.SecurityContext)
	}
	if stop := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; stop <= cfg.Server.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %v is not above the shutdown timeout %v", stop, cfg.Server.ShutdownTimeout)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers", path, len(pod.Containers))
	}
	c := pod.Containers[0]
	if !strings.Contains(c.Image, "/spyagency:") {
		t.Errorf("image %q", c.Image)
	}
	_, port, _ := strings.Cut(cfg.Server.Addr, ":")
	if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port {
		t.Errorf("container ports %+v, the configuration listens on %s", c.Ports, cfg.Server.Addr)
	}
	probes := map[string]string{}
	for name, p := range map[string]*probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil {
			t.Errorf("no %s probe", name)
			continue
		}
		probes[name] = p.HTTPGet.Path
		if !served(t, p.HTTPGet.Path) || p.HTTPGet.Port != c.Ports[0].Name {
			t.Errorf("%s probe %+v: not a route the server serves on its port", name, p.HTTPGet)
		}
	}
	if probes["liveness"] != "/healthz" || probes["readiness"] != "/readyz" {
		t.Errorf("probes %v: liveness is /healthz, readiness /readyz", probes)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	if !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("container security %+v", c.SecurityContext)
	}
	if len(c.Args) < 3 || c.Args[0] != "serve" || c.Args[1] != "--config" {
		t.Errorf("args %v", c.Args)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if mounts[c.Args[2]] != "config" {
		t.Errorf("the configuration %s is not mounted from the ConfigMap: %v", c.Args[2], mounts)
	}
	// Every secret file the configuration names is a key of the Secret, mounted where it says.
	secretDir := ""
	for path, name := range mounts {
		for _, v := range pod.Volumes {
			if v.Name == name && v.Secret != nil && v.Secret.SecretName == byKind["Secret"].Metadata.Name {
				secretDir = path
			}
		}
	}
	files := regexp.MustCompile(`(?m)_file:\s*(\S+)`).FindAllStringSubmatch(byKind["ConfigMap"].Data["spyagency.yaml"], -1)
	if len(files) == 0 || secretDir == "" {
		t.Fatalf("secret files %v, mounted at %q", files, secretDir)
	}
	for _, f := range files {
		dir, key := filepath.Split(f[1])
		if filepath.Clean(dir) != secretDir {
			t.Errorf("%s is not in the mounted Secret (%s)", f[1], secretDir)
		}
		if _, ok := byKind["Secret"].StringData[key]; !ok {
			t.Errorf("the Secret has no key %s", key)
		}
	}
	// Writable places: the data directory is the volume "data", /tmp an emptyDir; the rest is read only.
	if mounts[cfg.DataDir] != "data" || mounts["/tmp"] == "" {
		t.Errorf("data dir %s and /tmp must be mounted writable: %v", cfg.DataDir, mounts)
	}
	svc := byKind["Service"]
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != c.Ports[0].Name {
		t.Errorf("service ports %+v", svc.Spec.Ports)
	}
	return cfg, byKind
}

// exported is every metric name the process exports, from registries built as the app builds them.
// missingRun is a store that knows no run; only RunState is called.
type missingRun struct{ store.Store }

func (missingRun) RunState(context.Context, uint32) (pcl.RunState, error) {
	return pcl.RunState{}, errors.New("no such run")
}

func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	ev, err := metrics.NewEvents(reg)
	if err != nil {
		t.Fatal(err)
	}
	ev.Decided(pcl.RunState{Decision: pcl.Decision{State: pcl.ReadinessReady}})
	ev.Detected(pcl.SourceOMS, []pcl.Observation{{At: time.Now(), Seen: time.Now()}})
	ev.Delivered(store.OutboxEntry{Target: "t", Created: time.Now()}, time.Now())
	req, err := metrics.NewRequests(reg)
	if err != nil {
		t.Fatal(err)
	}
	req.ObserveRequest("GET /healthz", 200, time.Millisecond)
	timings, err := metrics.NewStoreTimings(reg)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = timings.Instrument(missingRun{}).RunState(context.Background(), 1) // an error: both store metrics
	now := time.Now()
	reg.MustRegister(metrics.NewCollector(metrics.Parts{
		Health:       func() []pcl.SourceHealth { return []pcl.SourceHealth{{Name: pcl.SourceOMS}} },
		Counts:       func() []metrics.SourceCount { return []metrics.SourceCount{{Source: pcl.SourceOMS}} },
		Runs:         func(context.Context) ([]pcl.RunState, error) { return nil, nil },
		FirstUnready: func(context.Context) (uint32, error) { return 1, nil },
		Pending: func(context.Context, string, int) ([]store.OutboxEntry, error) {
			return nil, nil
		},
		Targets: []string{"t"},
		Alerts:  func() []store.Alert { return nil },
		Now:     func() time.Time { return now },
	}))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{"process_resident_memory_bytes": true, "go_goroutines": true}
	for _, f := range fams {
		out[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM { // queried through their series
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[f.GetName()+s] = true
			}
		}
	}
	return out
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(read(t, "deploy/grafana/spyagency-dashboard.json"), &d); err != nil {
		t.Fatal(err)
	}
	names := exported(t)
	seen := map[string]bool{}
	name := regexp.MustCompile(`\b(spyagency_[a-z_]+|process_[a-z_]+|go_[a-z_]+)`)
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, q := range p.Targets {
			for _, m := range name.FindAllString(q.Expr, -1) {
				seen[m] = true
				if !names[m] {
					t.Errorf("panel %q queries %s, which the process does not export", p.Title, m)
				}
			}
		}
	}
	for _, must := range []string{"spyagency_first_unready_run", "spyagency_runs", "spyagency_source_lag_seconds", "spyagency_outbox_pending"} {
		if !seen[must] {
			t.Errorf("the dashboard shows no %s", must)
		}
	}
}
