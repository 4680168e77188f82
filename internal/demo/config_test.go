package demo

import (
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// TestConfigHarvestSlack: the demo's harvest spy keeps the default mtime slack (2 s, right for EOS and
// any whole-second file system, and so for wherever the demo's data directory is) unless a caller that
// knows its directory is on tmpfs (the study) asks for less.
func TestConfigHarvestSlack(t *testing.T) {
	t.Parallel()
	s, err := sim.New(sim.Config{Seed: 1, Dir: t.TempDir(), Faults: "none", Clock: clock.NewFake(sim.DefaultStart)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		asked, want time.Duration
	}{{0, 0 /* unset: the spy's harvest.DefaultMtimeSlack */}, {50 * time.Millisecond, 50 * time.Millisecond}} {
		cfg, err := Config(s, "http://127.0.0.1:1", Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), HarvestMtimeSlack: tc.asked})
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Sources.Harvest.MtimeSlack; got != tc.want {
			t.Errorf("asked %s: the harvest spy's mtime_slack is %s, want %s", tc.asked, got, tc.want)
		}
	}
}
