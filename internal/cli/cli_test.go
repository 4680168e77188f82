package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/fixtures"
	"github.com/cms-pcl/spyagency/internal/pgtest"
)

// syncBuffer is a bytes.Buffer safe to write from the command and read from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncBuffer
	code := Main(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndUsage(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "version")
	if code != 0 || !strings.Contains(out, "spyagency ") || !strings.Contains(out, "go1.") || !strings.Contains(out, "commit") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errs := run(t, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	if code, _, _ := run(t); code != 2 {
		t.Errorf("no command: %d", code)
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("server:\n  addr: 127.0.0.1:9090\n"), 0o644)
	if code, out, errs := run(t, "config", "check", good); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("good file: %d %q %q", code, out, errs)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("policy:\n  classes:\n    - pattern: Collisions*\n      required: [SiStripGainz]\n      on_timeout: maybe\n"), 0o644)
	code, _, errs := run(t, "config", "check", bad)
	if code != 1 || !strings.Contains(errs, "bad.yaml:4:") || !strings.Contains(errs, "SiStripGainz") || !strings.Contains(errs, "bad.yaml:5:") {
		t.Errorf("bad file: %d %q", code, errs)
	}
	if code, _, _ := run(t, "config", "check"); code != 2 {
		t.Errorf("no file: %d", code)
	}
	if code, out, _ := run(t, "config", "example"); code != 0 || !strings.Contains(out, "sources:") {
		t.Errorf("example: %d", code)
	}
	// The example is a production file: config check accepts it as printed.
	_, example, _ := run(t, "config", "example")
	exFile := filepath.Join(dir, "example.yaml")
	os.WriteFile(exFile, []byte(example), 0o644)
	if code, out, errs := run(t, "config", "check", exFile); code != 0 || !strings.HasSuffix(out, ": ok\n") {
		t.Errorf("config check of config example: %d %q %q", code, out, errs)
	}
	if strings.Contains(example, "\nclock:") || !strings.Contains(example, "dsn: sqlite:") {
		t.Error("config example sets a simulated clock or a store other than SQLite")
	}
	// A deprecated key is a warning: printed with its line, and the file is still ok.
	old := filepath.Join(dir, "old.yaml")
	os.WriteFile(old, []byte("agency:\n  max_wake_delay: 2m\n"), 0o644)
	if code, out, errs := run(t, "config", "check", old); code != 0 || !strings.Contains(out, "ok, with 1 warning") ||
		!strings.Contains(errs, "old.yaml:2:3: agency.max_wake_delay: warning: deprecated") {
		t.Errorf("deprecated key: %d %q %q", code, out, errs)
	}
}

func TestProbeCondDBFixture(t *testing.T) {
	t.Parallel()
	db := fixtures.Path(t, "conddb", "AlCaRecoHLTpaths8e29_1e31_v11_hlt_All.db")
	code, out, errs := run(t, "probe", "conddb", "--dsn", "sqlite:"+db, "--tag", "AlCaRecoHLTpaths8e29_1e31_v11_hlt")
	if code != 0 {
		t.Fatalf("probe: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 107 {
		t.Fatalf("%d lines, want the fixture's 107 IOVs", len(lines))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"source", "kind", "run", "at", "tag", "since", "inserted", "payload"} {
		if _, ok := first[k]; !ok {
			t.Errorf("line lacks %q: %s", k, lines[0])
		}
	}
	if code, _, errs := run(t, "probe", "conddb", "--dsn", "sqlite:"+db, "--tag", "NoSuchTag"); code != 1 || !strings.Contains(errs, "NoSuchTag") {
		t.Errorf("missing tag: %d %q", code, errs)
	}
}

func TestProbeOMSFixture(t *testing.T) {
	t.Parallel()
	body := fixtures.Read(t, "oms", "test_oms_runs.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer srv.Close()
	code, out, errs := run(t, "probe", "oms", "--url", srv.URL+"/agg/api/v1")
	if code != 0 {
		t.Fatalf("probe oms: %d %s", code, errs)
	}
	if n := strings.Count(out, "\n"); n != 15 {
		t.Errorf("%d runs, want the fixture's 15", n)
	}
}

func TestProbeBadSource(t *testing.T) {
	t.Parallel()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("<html><title>CERN Single Sign-On</title></html>"))
	}))
	defer html.Close()
	code, out, errs := run(t, "probe", "tier0", "--url", html.URL+"/t0wmadatasvc/prod")
	if code != 1 || out != "" || !strings.Contains(errs, "HTML") {
		t.Errorf("HTML answer: %d out=%q err=%q", code, out, errs)
	}
	if code, _, errs := run(t, "probe", "gossip", "--url", html.URL); code != 1 || !strings.Contains(errs, "unknown source") {
		t.Errorf("unknown source: %d %q", code, errs)
	}
	if code, _, errs := run(t, "probe", "harvest"); code != 1 || !strings.Contains(errs, "--dir") {
		t.Errorf("missing --dir: %d %q", code, errs)
	}
	if code, _, errs := run(t, "probe", "harvest", "--dir", filepath.Join(t.TempDir(), "missing")); code != 1 || errs == "" {
		t.Errorf("missing harvest directory: %d %q", code, errs)
	}
}

func TestServeStartsAndStops(t *testing.T) {
	t.Parallel()
	serveStartsAndStops(t, "sqlite:"+filepath.Join(t.TempDir(), "data", "spy.db"))
}

// TestServeOnPostgres: serve --store postgres://... opens the PostgreSQL store, serves from it, and
// never prints the DSN's password.
func TestServeOnPostgres(t *testing.T) {
	t.Parallel()
	errs := serveStartsAndStops(t, pgtest.Schema(t))
	if !strings.Contains(errs, "store postgres://") {
		t.Errorf("serve does not say which store it serves: %s", errs)
	}
}

// serveStartsAndStops runs serve on a store, reads the runs from it, stops it, and returns its stderr.
func serveStartsAndStops(t *testing.T, store string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--store", store}, &out, &errb) }()
	re := regexp.MustCompile(`serving on (http://[0-9.:]+)`)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; {
		if m := re.FindStringSubmatch(errb.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", errb.String())
		} else {
			time.Sleep(20 * time.Millisecond) // waiting on another goroutine's output, not on time
		}
	}
	resp, err := http.Get(base + "/api/v1/runs")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Runs []any }
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if resp.StatusCode != 200 || list.Runs == nil {
		t.Errorf("runs: %d %+v", resp.StatusCode, list)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on cancel")
	}
	if out.String() != "" {
		t.Errorf("serve wrote to stdout: %q", out.String())
	}
	return errb.String()
}

func TestServeRefusesBadStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.db")
	os.WriteFile(corrupt, bytes.Repeat([]byte("not a database "), 500), 0o644)
	code, _, errs := run(t, "serve", "--addr", "127.0.0.1:0", "--store", "sqlite:"+corrupt)
	if code != 1 || !strings.Contains(errs, "corrupt.db") {
		t.Errorf("corrupt store: %d %q", code, errs)
	}
	before, _ := os.ReadFile(corrupt)
	if !bytes.HasPrefix(before, []byte("not a database")) {
		t.Error("the corrupt file was changed")
	}
	if code, _, errs := run(t, "serve", "--store", "mysql://x"); code != 1 || !strings.Contains(errs, "mysql") {
		t.Errorf("bad DSN: %d %q", code, errs)
	}
}

// TestLogFormat: JSON lines where nobody reads at a terminal (a file, a pipe, the journal), text when
// asked, and a clear error for a format that does not exist.
func TestLogFormat(t *testing.T) {
	var buf strings.Builder
	for _, c := range []struct {
		env, want string
	}{{"", `{"time":`}, {"auto", `{"time":`}, {"json", `{"time":`}, {"text", "time="}} {
		t.Setenv(logFormatEnv, c.env)
		buf.Reset()
		log, err := logger(&buf, "info")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("run decided", "run", 392680, "workflow", "SiStripGains")
		if !strings.HasPrefix(buf.String(), c.want) || !strings.Contains(buf.String(), "392680") {
			t.Errorf("%s=%q: %q, want a line starting %q", logFormatEnv, c.env, buf.String(), c.want)
		}
	}
	t.Setenv(logFormatEnv, "xml")
	if _, err := logger(&buf, "info"); err == nil || !strings.Contains(err.Error(), "text, json or auto") {
		t.Errorf("xml: %v", err)
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a file taken for a terminal")
	}
}
