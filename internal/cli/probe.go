package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
)

// runProbe polls one source once with the same spy the agency runs, and prints what it saw.
func runProbe(e *env, args []string) error {
	fs := e.flags("probe", "probe SOURCE [--url URL] [--dsn DSN] [--dir DIR] [--run N] [--tag TAG]\n\nSOURCE is one of tier0, harvest, dropbox, conddb, dqm, oms.")
	url := fs.String("url", "", "base URL (tier0, dropbox, dqm, oms)")
	dsn := fs.String("dsn", "", "condition DB (conddb): sqlite:PATH or postgres://...")
	dir := fs.String("dir", "", "harvest area (harvest)")
	run := fs.Uint("run", 0, "the run to ask about (tier0, dqm: as a stopped open run; oms: the first run)")
	tag := fs.String("tag", "", "one condition DB tag (conddb; default: the catalogue's destination tags)")
	timeout := fs.Duration("timeout", 60*time.Second, "deadline of the poll")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	// Flags may come before or after the source name.
	positional, err := e.parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		fmt.Fprintln(e.stderr, "probe needs exactly one SOURCE")
		fs.Usage()
		return errUsage
	}
	src, err := pcl.ParseSource(positional[0])
	if err != nil {
		return err
	}
	log, err := logger(e.stderr, *level)
	if err != nil {
		return err
	}
	sc := config.Source{URL: strings.TrimRight(*url, "/"), DSN: *dsn, Dir: *dir, Timeout: *timeout}
	need := map[pcl.Source][2]string{pcl.SourceTier0: {"--url", sc.URL}, pcl.SourceDropbox: {"--url", sc.URL},
		pcl.SourceDQM: {"--url", sc.URL}, pcl.SourceOMS: {"--url", sc.URL}, pcl.SourceCondDB: {"--dsn", sc.DSN}, pcl.SourceHarvest: {"--dir", sc.Dir}}
	if n := need[src]; n[1] == "" {
		return fmt.Errorf("probe %s needs %s", src, n[0])
	}
	if *run > 1<<31 {
		return fmt.Errorf("bad --run %d", *run)
	}
	cat := pcl.DefaultCatalogue()
	hints := runner.StaticHints{}
	switch {
	case *run > 0:
		hints.Runs = []pcl.OpenRun{{Run: uint32(*run), Stopped: true, Streams: expressStreams(cat)}}
	case src == pcl.SourceCondDB:
		// With no run open the condition DB spy reads each tag from its newest IOV only (what a
		// serving agency needs between fills); a probe without --run shows every IOV, as if the first
		// run there can be were open.
		hints.Runs = []pcl.OpenRun{{Run: 1}}
	}
	p := app.SpyParams{Catalogue: cat, Clock: clock.Real{}, Logger: log, Hints: hints, ClassOf: config.Default().ClassOf,
		FirstRun: uint32(*run)}
	if *tag != "" {
		p.Tags = []string{*tag}
	} else {
		hints.Tags = cat.DestinationTags()
		p.Hints = hints
	}
	sp, err := app.NewSpy(src, sc, p)
	if err != nil {
		return err
	}
	if c, ok := sp.(interface{ Close() error }); ok {
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(e.ctx, *timeout)
	defer cancel()
	res, err := sp.Poll(ctx, "")
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	enc := json.NewEncoder(e.stdout)
	for _, o := range res.Observations {
		if err := enc.Encode(o); err != nil {
			return err
		}
	}
	log.Log(ctx, slog.LevelInfo, "probe done", "source", src, "observations", len(res.Observations))
	return nil
}

// expressStreams are every express stream that runs a workflow of the catalogue.
func expressStreams(cat *pcl.Catalogue) []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range cat.Workflows() {
		for _, s := range w.Streams {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
