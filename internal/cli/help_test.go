package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHelpExitsZero: help that was asked for goes to stdout and exits 0, for the program and for every
// command, in every spelling; a bad flag is still a usage error on stderr.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}} {
		code, out, errs := run(t, args...)
		if code != 0 || !strings.Contains(out, "Commands:") || errs != "" {
			t.Errorf("spyagency %s: exit %d, stdout %q, stderr %q", args[0], code, out, errs)
		}
	}
	for name := range commands() {
		for _, h := range []string{"--help", "-h"} {
			code, out, errs := run(t, name, h)
			if code != 0 || !strings.Contains(out, "Usage: spyagency") || errs != "" {
				t.Errorf("spyagency %s %s: exit %d, stdout %q, stderr %q", name, h, code, out, errs)
			}
		}
	}
	if code, out, _ := run(t, "help", "serve"); code != 0 || !strings.Contains(out, "--config") {
		t.Errorf("spyagency help serve: exit %d, %q", code, out)
	}
	if code, out, errs := run(t, "serve", "--no-such-flag"); code != 2 || out != "" || !strings.Contains(errs, "no-such-flag") || !strings.Contains(errs, "Usage:") {
		t.Errorf("a bad flag: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestBuildVersion(t *testing.T) {
	t.Parallel()
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	rev := "93576a749e680bc61a681d1250f5f15a7d594455"
	for _, tc := range []struct {
		name, ldflags   string
		bi              *debug.BuildInfo
		version, commit string
	}{
		{"a git build, go derived a pseudo-version", "dev", &debug.BuildInfo{
			Main:     debug.Module{Version: "v0.0.0-20261201231903-93576a749e68+dirty"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "2026-12-01T23:19:03Z", "vcs.modified", "true")},
			"v0.0.0-20261201231903-93576a749e68+dirty", rev + " (2026-12-01T23:19:03Z, with uncommitted changes)"},
		{"a git build without a module version", "dev", &debug.BuildInfo{
			Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", rev, "vcs.time", "2026-12-01T23:19:03Z", "vcs.modified", "false")},
			"dev-93576a749e68", rev + " (2026-12-01T23:19:03Z)"},
		{"a dirty build without a module version", "dev", &debug.BuildInfo{
			Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", rev, "vcs.modified", "true")},
			"dev-93576a749e68+dirty", rev + " (with uncommitted changes)"},
		{"a release set with -ldflags wins", "1.4.0", &debug.BuildInfo{
			Main: debug.Module{Version: "v0.0.0-20261201231903-93576a749e68"}, Settings: vcs("vcs.revision", rev)},
			"1.4.0", rev},
		{"go install of a tagged module", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3", "unknown"},
		{"go run: nothing stamped", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev", "unknown"},
		{"no build info at all", "dev", nil, "dev", "unknown"},
	} {
		v, c := buildVersion(tc.ldflags, tc.bi, tc.bi != nil)
		if v != tc.version || c != tc.commit {
			t.Errorf("%s: got %q / %q, want %q / %q", tc.name, v, c, tc.version, tc.commit)
		}
	}
}

// TestClearNeedsAReason: clear is refused without --reason, as its help says, before anything is sent.
func TestClearNeedsAReason(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"run": 392680, "readiness": {"state": "waiting"}}`))
	}))
	defer srv.Close()
	for _, args := range [][]string{
		{"clear", "392680", "--server", srv.URL},
		{"clear", "392680", "--reason", "  ", "--server", srv.URL},
		{"clear", "392680", "--workflow", "SiStripGains", "--server", srv.URL},
	} {
		code, _, errs := run(t, args...)
		if code != 1 || !strings.Contains(errs, "--reason is required") || !strings.Contains(errs, "audit log") {
			t.Errorf("%q: exit %d, %q", args, code, errs)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent for refused commands", n)
	}
	if code, out, errs := run(t, "clear", "392680", "--reason", "pixel alignment fixed", "--server", srv.URL); code != 0 || !strings.Contains(out, "run 392680") {
		t.Errorf("clear with a reason: %d %q %q", code, out, errs)
	}
}

// TestServeWarnsOfADeprecatedKeyOnce: serve reads agency.max_wake_delay as resync_interval and says so
// once in its log.
func TestServeWarnsOfADeprecatedKeyOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "old.yaml")
	os.WriteFile(file, []byte("store:\n  dsn: sqlite:"+filepath.Join(dir, "spy.db")+"\nagency:\n  max_wake_delay: 2m\n"), 0o644)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"serve", "--config", file, "--addr", "127.0.0.1:0"}, &out, &errb) }()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(errb.String(), "serving on"); {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", errb.String())
		}
		time.Sleep(20 * time.Millisecond) // waiting on another goroutine's output
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d: %s", code, errb.String())
	}
	if n := strings.Count(errb.String(), "deprecated"); n != 1 || !strings.Contains(errb.String(), "agency.max_wake_delay") {
		t.Errorf("%d deprecation warnings in the log:\n%s", n, errb.String())
	}
}
