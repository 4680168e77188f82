package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/config"
)

// TestSimulateAndServe: simulate prints a serve configuration, and a serve built from it sees the
// simulated runs through its spies, on the simulator's clock.
func TestSimulateAndServe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"simulate", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--speed", "6000",
			"--faults", "none", "--agency", "http://127.0.0.1:1", "--print-config"}, &out, &errb)
	}()
	var yaml string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(yaml, "wall_start"); {
		if time.Now().After(deadline) {
			t.Fatalf("no configuration printed: %q %q", out.String(), errb.String())
		}
		time.Sleep(20 * time.Millisecond) // waiting for the other goroutine's output
		yaml = out.String()
	}
	// config check accepts it as it is: its simulated clock watches sources on loopback only.
	file := filepath.Join(t.TempDir(), "simulate.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := run(t, "config", "check", file); code != 0 || !strings.HasSuffix(out, ": ok\n") || errs != "" {
		t.Fatalf("config check of the printed configuration: %d %q %q\n%s", code, out, errs, yaml)
	}
	cfg, err := config.Parse("simulate.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("the printed configuration does not parse: %v\n%s", err, yaml)
	}
	if cfg.Clock.Speed != 6000 || len(cfg.Sources.Enabled()) != 6 {
		t.Fatalf("configuration: clock %+v, sources %v", cfg.Clock, cfg.Sources.Enabled())
	}
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	a, err := app.New(ctx, app.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Run(ctx, "127.0.0.1:0") }()
	<-a.Started()
	var runs struct {
		Runs []struct {
			Run       uint32
			Readiness struct{ Decided time.Time }
		}
	}
	// A new run shows first as a placeholder (stored before it is reconciled, with no decision yet), so
	// wait for its first decision.
	for deadline := time.Now().Add(60 * time.Second); len(runs.Runs) == 0 || runs.Runs[0].Readiness.Decided.IsZero(); {
		if time.Now().After(deadline) {
			t.Fatal("serve decided no simulated run within a minute")
		}
		runs.Runs = nil
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get("http://" + a.Addr().String() + "/api/v1/runs")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&runs)
		resp.Body.Close()
	}
	if runs.Runs[0].Run < 400000 {
		t.Errorf("run %d is not the simulator's", runs.Runs[0].Run)
	}
	// Decisions are dated on the simulator's clock, which started at its epoch, not on the wall clock.
	if d := runs.Runs[0].Readiness.Decided; d.Sub(cfg.Clock.Epoch) < 0 || d.Sub(cfg.Clock.Epoch) > 30*24*time.Hour {
		t.Errorf("decided %s, not in simulated time after %s", d, cfg.Clock.Epoch)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	if code := <-done; code != 0 {
		t.Errorf("simulate exited %d: %s", code, errb.String())
	}
}

func TestDialable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"0.0.0.0:8081": "127.0.0.1:8081", "[::]:8081": "127.0.0.1:8081", "127.0.0.1:8081": "127.0.0.1:8081", "10.1.2.3:80": "10.1.2.3:80"} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := dialable(a); got != want {
			t.Errorf("dialable(%s) = %s, want %s", in, got, want)
		}
	}
}
