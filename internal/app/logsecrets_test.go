package app

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestLogsHoldNoSecrets: a whole process logging at debug level, through the paths where a secret
// could leak (a push target that refuses every delivery, Tier-0 pulling with its token, a client with a
// wrong token), never writes the webhook's shared secret nor an API token to its log.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const shared = "hook-secret-7f3a9c1e5b"
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(shared+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := make(chan struct{}, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad signature", http.StatusUnauthorized) // every delivery fails: the error path
		select {
		case refused <- struct{}{}:
		default:
		}
	}))
	defer hook.Close()
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(dir, "spy.db")
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Access.Pull = "token"
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0", Type: "webhook", URL: hook.URL, SecretFile: secretFile}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(t.Context(), Options{Config: cfg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	token, _, err := a.Tokens.Create(t.Context(), "tier0-pull", access.ScopeSteer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stop := time.Now().Add(-time.Hour).UTC()
	if err := a.Agency.Ingest(t.Context(), pcl.SourceOMS, []pcl.Observation{
		{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: stop, RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}},
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-refused:
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery reached the webhook")
	}
	base := "http://" + a.Addr().String()
	for _, bearer := range []string{token, token + "x", "not-a-token"} {
		req, _ := http.NewRequest("GET", base+"/t0/v1/first_unready_run", nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The failed delivery is logged (the error path ran) before the log is searched.
	deadline := time.Now().Add(20 * time.Second)
	for s := logs.String(); !strings.Contains(s, "delivery failed") && !strings.Contains(s, "dead letter"); s = logs.String() {
		if time.Now().After(deadline) {
			t.Fatalf("the failed delivery was never logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Close()
	out := logs.String()
	for name, secret := range map[string]string{"the webhook's shared secret": shared, "the API token": token} {
		if strings.Contains(out, secret) {
			t.Errorf("%s is in the log", name)
		}
	}
	// One line per event, each attribute once: a dead letter is one line naming its target once.
	given := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, `"part":"steer"`) && strings.Contains(line, `"version":1`) {
			given++
		}
	}
	if given != 1 {
		t.Errorf("the dead letter is logged %d times, want once", given)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k := duplicateKey(line); k != "" {
			t.Errorf("attribute %q twice in %s", k, line)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// duplicateKey is a top-level key that a JSON log line holds twice, "" if none.
func duplicateKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := tok.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
	}
	return ""
}
