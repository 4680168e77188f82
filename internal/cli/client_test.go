package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
)

// startServer runs a whole instance on a temp store holding one waiting run.
func startServer(t *testing.T) (base, dsn string) {
	t.Helper()
	return startServerOn(t, "sqlite:"+filepath.Join(t.TempDir(), "spy.db"))
}

// startServerOn is startServer on the store a DSN names.
func startServerOn(t *testing.T, dsn string) (base, storeDSN string) {
	t.Helper()
	cfg := config.Default()
	cfg.Store.DSN = dsn
	ctx, cancel := context.WithCancel(t.Context())
	a, err := app.New(ctx, app.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, "127.0.0.1:0") }()
	t.Cleanup(func() { cancel(); <-done })
	<-a.Started()
	// On PostgreSQL the process is a replica: its reconcile's decision is a leader-only write, refused
	// until it holds the lease, which it takes on its first tick.
	for deadline := time.Now().Add(30 * time.Second); !a.Leading(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the only replica did not take the leader lease within 30 s")
		}
	}
	stop := time.Now().Add(-time.Hour).UTC()
	obs := []pcl.Observation{
		{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: stop, RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}},
		{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: 392680, At: stop, Stream: "Express", Producers: []string{"PromptCalibProdSiStripGains"}},
	}
	if err := a.Agency.Ingest(ctx, pcl.SourceOMS, obs); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Agency.Reconcile(ctx, 392680); err != nil {
		t.Fatal(err)
	}
	return "http://" + a.Addr().String(), dsn
}

func TestClientCommands(t *testing.T) {
	t.Parallel()
	base, dsn := startServer(t)
	code, out, errs := run(t, "runs", "--server", base)
	if code != 0 || !strings.Contains(out, "392680") || !strings.Contains(out, "waiting") || !strings.Contains(out, "READINESS") {
		t.Fatalf("runs: %d %q %q", code, out, errs)
	}
	code, out, _ = run(t, "run", "392680", "--server", base)
	if code != 0 || !strings.Contains(out, "SiStripGains") || !strings.Contains(out, "blocking: SiStripGains") {
		t.Errorf("run: %d %q", code, out)
	}
	if code, out, _ := run(t, "run", "--server", base, "--json", "392680"); code != 0 || !strings.HasPrefix(out, "{") {
		t.Errorf("run --json: %d %q", code, out)
	}
	if code, _, errs := run(t, "run", "1", "--server", base); code != 1 || !strings.Contains(errs, "not_found") {
		t.Errorf("unknown run: %d %q", code, errs)
	}
	// Without a token the server refuses; with an operate token it holds the run.
	if code, _, errs := run(t, "hold", "392680", "--reason", "pixel alignment looks odd", "--server", base); code != 1 || !strings.Contains(errs, "unauthorized") {
		t.Errorf("hold without token: %d %q", code, errs)
	}
	code, tok, errs := run(t, "token", "create", "--store", dsn, "--name", "calib-shifter", "--scope", "operate", "--expires", "1h")
	if code != 0 || !strings.HasPrefix(tok, "sa_") {
		t.Fatalf("token create: %d %q %q", code, tok, errs)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(tok), 0o600)
	if code, _, errs := run(t, "hold", "392680", "--server", base, "--token-file", tokenFile); code != 1 || !strings.Contains(errs, "--reason") {
		t.Errorf("hold without reason: %d %q", code, errs)
	}
	code, out, errs = run(t, "hold", "392680", "--reason", "pixel alignment looks odd", "--server", base, "--token-file", tokenFile)
	if code != 0 || !strings.Contains(out, "held") {
		t.Fatalf("hold: %d %q %q", code, out, errs)
	}
	code, out, errs = run(t, "clear", "392680", "--reason", "alignment checked, fine", "--server", base, "--token-file", tokenFile)
	if code != 0 || !strings.Contains(out, "waiting") {
		t.Errorf("clear: %d %q %q", code, out, errs)
	}
	code, tok2, _ := run(t, "token", "create", "--store", dsn, "--name", "dashboard", "--scope", "read")
	os.WriteFile(tokenFile, []byte(tok2), 0o600)
	if code != 0 {
		t.Fatal("read token")
	}
	if code, _, errs := run(t, "release", "392680", "--reason", "x", "--server", base, "--token-file", tokenFile); code != 1 || !strings.Contains(errs, "forbidden") {
		t.Errorf("release with a read token: %d %q", code, errs)
	}
	if code, _, _ := run(t, "token", "create", "--store", dsn, "--name", "x", "--scope", "admin"); code != 1 {
		t.Errorf("bad scope: %d", code)
	}
	if code, _, errs := run(t, "runs", "--server", "ftp://x"); code != 1 || !strings.Contains(errs, "--server") {
		t.Errorf("bad server: %d %q", code, errs)
	}
}

// The server's replies are read strictly: a field the client does not know means client and server
// disagree, and the operator is told rather than shown half a run.
func TestClientRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"run": 392680, "class": "Collisions25", "readiness": {"state": "waiting"}, "workflows": [], "quorum": 3}`+"\n")
	}))
	defer srv.Close()
	if code, _, errs := run(t, "run", "392680", "--server", srv.URL); code != 1 || !strings.Contains(errs, `unknown field "quorum"`) {
		t.Errorf("run against a server with an unknown field: %d %q", code, errs)
	}
	// --json prints the reply as it came, whatever it holds.
	if code, out, errs := run(t, "run", "392680", "--server", srv.URL, "--json"); code != 0 || !strings.Contains(out, `"quorum": 3}`) {
		t.Errorf("run --json: %d %q %q", code, out, errs)
	}
}

// TestTokenCommands: a token is made, listed with its scope, expiry and last use (never itself),
// revoked by name, and refused by the server from then on; each change is in the audit log.
func TestTokenCommands(t *testing.T) {
	t.Parallel()
	base, dsn := startServer(t)
	tokenCommands(t, base, dsn)
}

// TestTokenCommandsOnPostgres is TestTokenCommands with a server and the token commands on the
// PostgreSQL store (token create|list|revoke --store postgres://...).
func TestTokenCommandsOnPostgres(t *testing.T) {
	t.Parallel()
	base, dsn := startServerOn(t, pgtest.Schema(t))
	tokenCommands(t, base, dsn)
}

func tokenCommands(t *testing.T, base, dsn string) {
	code, tok, errs := run(t, "token", "create", "--store", dsn, "--name", "tier0-prod", "--scope", "steer", "--expires", "720h")
	if code != 0 || !strings.HasPrefix(tok, "sa_") || !strings.Contains(errs, "shown only now") {
		t.Fatalf("token create: %d %q %q", code, tok, errs)
	}
	tok = strings.TrimSpace(tok)
	get := func() int {
		req, _ := http.NewRequest("GET", base+"/t0/v1/first_unready_run", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(); c != 200 {
		t.Fatalf("the new token: HTTP %d", c)
	}
	code, out, errs := run(t, "token", "list", "--store", dsn)
	if code != 0 || !strings.Contains(out, "tier0-prod") || !strings.Contains(out, "steer") || !strings.Contains(out, "live") ||
		strings.Contains(out, tok) || strings.Count(out, "never") != 0 {
		t.Errorf("token list: %d %q %q", code, out, errs)
	}
	if code, out, _ := run(t, "token", "list", "--store", dsn, "--json"); code != 0 || !strings.Contains(out, `"last_used":"`) || strings.Contains(out, tok) {
		t.Errorf("token list --json (the use above must be recorded): %d %q", code, out)
	}
	if code, out, errs := run(t, "token", "revoke", "tier0-prod", "--store", dsn); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("token revoke: %d %q %q", code, out, errs)
	}
	if c := get(); c != 401 {
		t.Errorf("a revoked token: HTTP %d, want 401", c)
	}
	if code, _, errs := run(t, "token", "revoke", "tier0-prod", "--store", dsn); code != 1 || !strings.Contains(errs, "no live token") {
		t.Errorf("revoke twice: %d %q", code, errs)
	}
	if code, out, _ := run(t, "token", "list", "--store", dsn); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("token list after revoke: %d %q", code, out)
	}
	code, out, _ = run(t, "runs", "--server", base, "--json")
	if code != 0 {
		t.Fatal(out)
	}
	var audit struct {
		Entries []struct{ Actor, Action, Detail string }
	}
	resp, err := http.Get(base + "/api/v1/audit")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&audit); err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Actor, "cli") && strings.Contains(e.Detail, "tier0-prod") {
			actions[e.Action] = true
		}
	}
	if !actions["token-create"] || !actions["token-revoke"] {
		t.Errorf("audit entries of the token commands: %+v", audit.Entries)
	}
	for _, bad := range [][]string{{"token"}, {"token", "mint"}, {"token", "list"}, {"token", "revoke", "--store", dsn}} {
		if code, _, _ := run(t, bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
