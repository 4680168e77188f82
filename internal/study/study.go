// Package study measures what Spy Agency gains: the release latency of PromptReco after run stop under
// several release policies, on one seeded simulated world (internal/sim) run in virtual time.
//
// Every policy sees the same world: the same seed, so the same fills, runs, harvests, uploads and
// faults. Policies that involve Tier-0 asking the agency run the world again, since Tier-0's locks move
// the first condition-safe run and so the fate of late uploads:
//
//   - fixed48h: Tier-0 today, the simulator's Tier-0 in its fixed mode (lock 47.5 h after stop, in run
//     order). Its world's truth is also the oracles' input.
//   - agency: the product's own code, the stepped demo (internal/demo): every spy polls the simulated
//     sources over HTTP, files and SQL on its real default interval, the agency stores, reconciles and
//     decides, and the simulated Tier-0 reads the pull API, with its own fixed delay OR-ed in as
//     docs/tier0-integration.md asks.
//   - agency+operator: the same, with a simulated shift operator who accepts every bad required
//     workflow of a blocked run once it has been blocked for the response time.
//   - oracle: each run released in run order at the first instant it is safe (demo.SafeAt, the rule of
//     demo.CheckRelease), from the simulator's truth, with no detection delay: the physical limit.
//   - oracle-unordered: the same without run order: what per-run locking in Tier-0 would add.
//
// The unsafe count of every policy is demo.CheckRelease, the end-to-end test's checker.
package study

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// The policies, by the names the command line takes.
const (
	Fixed48h        = "fixed48h"
	Agency          = "agency"
	Oracle          = "oracle"
	OracleUnordered = "oracle-unordered"
	AgencyOperator  = "agency+operator"
	// OracleOperator is the oracle with the operator's response time added: a run that is never safe
	// by itself is released the response time after the simulator's truth shows what blocks it. It is
	// the yardstick of agency+operator, shown whenever agency+operator runs (or when asked for).
	OracleOperator = "oracle+operator"
)

// Policies lists the policies the command line accepts, in the order the results show them.
var Policies = []string{Fixed48h, Agency, AgencyOperator, Oracle, OracleUnordered, OracleOperator}

// Options configure a study. Zero values take the defaults of `spyagency study`.
type Options struct {
	Days     int    // runs that stop in the first Days simulated days are measured (default 28)
	Seed     uint64 // default 1
	Faults   string // none, default, heavy (default "default")
	Policies []string
	// OperatorResponse is how long the simulated operator takes to act on a blocked run (default 1 h).
	OperatorResponse time.Duration
	// Step is the driver's step in simulated time (default 1 min, the shortest default poll interval of
	// a spy, so that every spy polls on its own interval). Longer steps poll less often than the
	// product would: only tests use them.
	Step time.Duration
	// Dir is where the worlds and stores are written (default a temporary directory, in /dev/shm when
	// there is one), removed at the end when it was made here.
	Dir    string
	Logger *slog.Logger

	// tmpfs says Dir is in /dev/shm (a tmpfs), whose file times follow this clock in kernel ticks.
	tmpfs bool
}

// tmpfsMtimeSlack is the harvest spy's mtime_slack on the study's tmpfs: well above a kernel tick
// (4 ms at 250 Hz, 10 ms at 100 Hz). With the default 2 s, a stepped world listed and stat'ed the whole
// year folder at every poll, since a second of real time holds hundreds of simulated minutes there.
const tmpfsMtimeSlack = 50 * time.Millisecond

// Result is a study's outcome.
type Result struct {
	Days     int            `json:"-"`
	Seed     uint64         `json:"-"`
	Faults   string         `json:"-"`
	Response time.Duration  `json:"-"`
	Policies []PolicyResult `json:"policies"`
	// Releases holds every measured run's release under each policy, for the plot.
	Releases map[string][]RunRelease `json:"-"`
	Start    time.Time               `json:"-"`
	Elapsed  time.Duration           `json:"-"`
}

// Policy returns the result of one policy.
func (r *Result) Policy(name string) (PolicyResult, bool) {
	for _, p := range r.Policies {
		if p.Policy == name {
			return p, true
		}
	}
	return PolicyResult{}, false
}

// withDefaults fills the zero values and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Days == 0 {
		o.Days = 28
	}
	if o.Days < 0 || o.Days > 366 {
		return o, fmt.Errorf("study: days must be between 1 and 366, got %d", o.Days)
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Faults == "" {
		o.Faults = "default"
	}
	if _, err := sim.FaultProfile(o.Faults); err != nil {
		return o, fmt.Errorf("study: %w", err)
	}
	if len(o.Policies) == 0 {
		o.Policies = Policies
	}
	for _, p := range o.Policies {
		if !slices.Contains(Policies, p) {
			return o, fmt.Errorf("study: unknown policy %q (known: %s)", p, strings.Join(Policies, ", "))
		}
	}
	if o.OperatorResponse == 0 {
		o.OperatorResponse = time.Hour
	}
	if o.OperatorResponse < 0 {
		return o, fmt.Errorf("study: the operator's response time must not be negative, got %s", o.OperatorResponse)
	}
	if o.Step == 0 {
		o.Step = time.Minute
	}
	if o.Step < time.Second || o.Step > time.Hour {
		return o, fmt.Errorf("study: step must be between 1s and 1h, got %s", o.Step)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Run runs the study: the fixed world, and each agency world asked for, at once (they are independent),
// then the metrics of every policy asked for.
func Run(ctx context.Context, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	if o.Dir == "" {
		base := ""
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			base = "/dev/shm" // the stores' fsyncs cost nothing there; the worlds are the same
		}
		dir, err := os.MkdirTemp(base, "spyagency-study-")
		if err != nil {
			return nil, fmt.Errorf("study: working directory: %w", err)
		}
		defer os.RemoveAll(dir)
		o.Dir, o.tmpfs = dir, base != ""
	}
	w := window{start: sim.DefaultStart, measureEnd: sim.DefaultStart.Add(time.Duration(o.Days) * 24 * time.Hour)}
	// Every measured run is locked by 47.5 h after its stop at the latest (Tier-0's own delay); an hour
	// more lets its release and the agency's view of it land.
	w.end = w.measureEnd.Add(pcl.Tier0RecoTimeout + time.Hour)

	var (
		mu     sync.Mutex
		worlds = map[string]*world{}
		errs   []error
		wg     sync.WaitGroup
	)
	start := func(name string, f func() (*world, error)) {
		wg.Go(func() {
			t := time.Now()
			wd, err := f()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("study: the %s world: %w", name, err))
				return
			}
			o.Logger.Info("study: world done", "world", name, "elapsed", time.Since(t).Round(time.Millisecond))
			worlds[name] = wd
		})
	}
	start(Fixed48h, func() (*world, error) { return runFixed(ctx, o, w) })
	for _, p := range []string{Agency, AgencyOperator} {
		if slices.Contains(o.Policies, p) {
			start(p, func() (*world, error) { return runAgency(ctx, o, w, p == AgencyOperator) })
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res, err := measure(o, w, worlds)
	if err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(began)
	return res, nil
}

// window is the simulated time a study covers.
type window struct {
	start      time.Time // the world's beginning
	measureEnd time.Time // runs that stop before it are measured
	end        time.Time // the world runs until then
}

// world is what one simulated world left: every run's truth, Tier-0's releases, and, for an agency
// world, when the agency itself first found each run releasable and the operator's actions.
type world struct {
	truth    map[uint32]sim.RunTruth
	releases map[uint32]sim.Release
	// ready is when the agency first decided a run releasable (its own readiness, before in-order
	// release): the start of any wait behind an earlier run.
	ready map[uint32]time.Time
	// actions counts the operator's overrides per run.
	actions map[uint32]int
}
