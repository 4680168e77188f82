package app

import (
	"bytes"
	"context"
	"database/sql"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// fullConfig is a configuration with a part of each kind that holds something open: the store, a
// harvest area watched for changes, a condition DB the spy opens on its first poll, and an SQL push
// target with its own connection.
func fullConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	harvestDir := filepath.Join(dir, "harvest")
	if err := os.MkdirAll(harvestDir, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := conddbv2.Create(t.Context(), filepath.Join(dir, "conddb.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Store.DSN = "sqlite:" + filepath.Join(dir, "spy.db")
	cfg.Sources.Set(pcl.SourceHarvest, config.Source{Enabled: true, Dir: harvestDir, Interval: time.Minute, Timeout: 30 * time.Second, StaleAfter: 3})
	cfg.Sources.Set(pcl.SourceCondDB, config.Source{Enabled: true, DSN: "sqlite:" + filepath.Join(dir, "conddb.db"),
		Interval: time.Minute, Timeout: 30 * time.Second, StaleAfter: 3})
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0-db", Type: "sql", DSN: "sqlite:" + filepath.Join(dir, "tier0.db")}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// alone says whether a SQLite file in WAL mode (the store) is open nowhere else: switching it out of
// WAL mode needs every other connection to it closed.
func alone(path string) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode = DELETE").Scan(&mode); err != nil {
		return err
	}
	if mode != "delete" {
		return &os.PathError{Op: "journal_mode", Path: path, Err: os.ErrExist}
	}
	_, err = db.Exec("PRAGMA journal_mode = WAL")
	return err
}

// settled waits for the goroutines to be back at most at want, and says how many there are.
func settled(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// TestStartAndCloseReleaseEverything: a whole App started and closed leaves its store open nowhere and
// no goroutine behind: every database handle (the store's, the condition DB spy's, the SQL target's)
// keeps one of its own until it is closed, and so does every loop, the server and the harvest watch.
//
// Not parallel: it counts the process's goroutines.
func TestStartAndCloseReleaseEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := fullConfig(t, dir)
	before := runtime.NumGoroutine()
	a, err := New(t.Context(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + a.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("readyz after Start: HTTP %d", resp.StatusCode)
	}
	// Every spy polled once (the condition DB spy opened its database), and the SQL target is open.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		polled := 0
		for _, h := range a.SourceHealth() {
			if !h.LastSuccess.IsZero() || h.Failures > 0 {
				polled++
			}
		}
		if polled == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spies did not poll: %+v", a.SourceHealth())
		}
	}
	store := filepath.Join(dir, "spy.db")
	if err := alone(store); err == nil {
		t.Fatal("the store counts as open nowhere while the App runs: the check below proves nothing")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := alone(store); err != nil {
		t.Errorf("the store is still open after Close: %v", err)
	}
	if n := settled(before); n > before {
		var stacks bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Errorf("%d goroutines after Close, %d before New:\n%s", n, before, stacks.String())
	}
}

// TestStartTwiceAndCloseTwice: a second Start is an error, not a panic; Close may be called again and
// does nothing; Start after Close is refused; the store is closed.
func TestStartTwiceAndCloseTwice(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	a, err := New(t.Context(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	addr := a.Addr().String()
	if err := a.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("second Start: %v, want already started", err)
	}
	if a.Addr().String() != addr {
		t.Errorf("the second Start moved the server from %s to %s", addr, a.Addr())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := a.Start(t.Context()); err == nil {
		t.Error("Start after Close succeeded")
	}
	if _, err := a.Store.RunStates(t.Context(), store.RunQuery{}); !apperr.Is(err, apperr.Unavailable) {
		t.Errorf("the store after Close: %v, want it closed", err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Close", addr)
	}
}

// TestCloseWithoutStart: an App built and never started closes what New opened.
func TestCloseWithoutStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := New(t.Context(), Options{Config: fullConfig(t, dir)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := alone(filepath.Join(dir, "spy.db")); err != nil {
		t.Errorf("the store is still open after Close: %v", err)
	}
}

// TestStartRefused: a stepped App is driven by Step, and an address in use is an error from Start that
// leaves nothing running; both still close.
func TestStartRefused(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	stepped, err := New(t.Context(), Options{Config: cfg, Stepped: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := stepped.Start(t.Context()); err == nil {
		t.Error("a stepped App started")
	}
	if err := stepped.Step(t.Context()); err != nil {
		t.Errorf("Step after a refused Start: %v", err)
	}
	if err := stepped.Close(); err != nil {
		t.Fatal(err)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg = config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	cfg.Server.Addr = taken.Addr().String()
	a, err := New(t.Context(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err == nil {
		t.Errorf("Start on %s, which is taken, succeeded", cfg.Server.Addr)
	}
	select {
	case <-a.Started():
		t.Error("Started is closed after a failed Start")
	default:
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRunEndsWhenTheContextDoes: Run is Start, a wait and Close; the store is closed when it returns.
func TestRunEndsWhenTheContextDoes(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	a, err := New(t.Context(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, "127.0.0.1:0") }()
	<-a.Started()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.RunStates(t.Context(), store.RunQuery{}); !apperr.Is(err, apperr.Unavailable) {
		t.Errorf("the store after Run: %v, want it closed", err)
	}
}
