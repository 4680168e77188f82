package app

import (
	"io"
	"log/slog"
	"testing"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestHarvestSpyIsClosed: the harvest spy holds an inotify descriptor once it polls, so buildRunners
// must list it among the spies to close, and its notifications setting must reach it.
func TestHarvestSpyIsClosed(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"auto", "off"} {
		sc := config.Default().Sources.Harvest
		sc.Dir, sc.Notifications = t.TempDir(), v
		sp, err := NewSpy(pcl.SourceHarvest, sc, SpyParams{Catalogue: pcl.DefaultCatalogue(), Clock: clock.NewFake(clock.Real{}.Now()), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		c, ok := sp.(io.Closer)
		if !ok {
			t.Fatalf("the harvest spy has no Close: its descriptor would leak")
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	sc := config.Default().Sources.Harvest
	sc.Dir, sc.Notifications = t.TempDir(), "sometimes"
	if _, err := NewSpy(pcl.SourceHarvest, sc, SpyParams{Catalogue: pcl.DefaultCatalogue(), Clock: clock.Real{}, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Error("notifications \"sometimes\" accepted")
	}
}
