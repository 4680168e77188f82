package sim

import (
	"fmt"
	"time"
)

// Span is a uniform range of durations [Min, Max].
type Span struct {
	Min, Max time.Duration
}

// Params are the world's rates and latencies. docs/simulator.md gives each default and the fact of
// cms-interfaces.md it comes from; values marked there as assumptions have no published figure.
type Params struct {
	// Year and EraLetter make OMS `era` (Run2026A) and the run classes' two-digit year. Year is the
	// first year; a run that starts in a later calendar year takes that year (YearAt), as CMS's eras,
	// menus and HLT keys do.
	Year      int
	EraLetter string
	// FirstRun is the first run number.
	FirstRun uint32

	// StableBeams is how long a proton fill delivers stable beams; Turnaround is the time between two
	// fills (cosmics are taken then). HIFillFraction is the share of lead-ion fills.
	StableBeams    Span
	Turnaround     Span
	HIFillFraction float64
	// CollisionRun is the length of a normal collisions run; ShortRunFraction of runs instead last
	// ShortRun (a run stopped after a problem, like 392673-392675 of the 2025 fixture).
	CollisionRun     Span
	ShortRunFraction float64
	ShortRun         Span
	CosmicsRun       Span
	CommissioningRun Span
	// RunGap is the pause between two runs; RunNumberStep the most run numbers skipped (mini-DAQ and
	// private runs take numbers too).
	RunGap        Span
	RunNumberStep int
	// LumiSection is the length of a lumisection (2^18 LHC orbits).
	LumiSection time.Duration

	// ConfigureDelay is how long after a run's start Tier-0 has its express configuration.
	ConfigureDelay time.Duration
	// ExpressLatency is how long after run stop a stream's express processing closes its input.
	ExpressLatency Span
	// PeriodicHarvest and SlowPeriodicHarvest are the AlcaHarvest cycles; SlowStreams use the slow one.
	PeriodicHarvest     time.Duration
	SlowPeriodicHarvest time.Duration
	SlowStreams         []string
	// AlcaHarvestTimeout: AlcaHarvest runs at the latest this long after run stop.
	AlcaHarvestTimeout time.Duration
	// ConditionUploadTimeout: the upload loop waits for a run at most this long after its stop.
	ConditionUploadTimeout time.Duration
	// FeederInterval is Tier-0's feeder cycle: upload loop, releases, and (agency mode) one poll.
	FeederInterval time.Duration
	// DropboxLatency is how long the upload service takes to process an upload.
	DropboxLatency Span
	// DQMLatency is how long after AlcaHarvest the DQM GUI shows the ALCAPROMPT harvesting.
	DQMLatency time.Duration

	// RecoDelay and RecoLockDelay are Tier-0's PromptReco release delay after stop and how long before
	// the release the run's settings are locked.
	RecoDelay     time.Duration
	RecoLockDelay time.Duration
	// RecoDuration is how long PromptReco of a dataset takes once released (run_dataset_done).
	RecoDuration time.Duration

	// ShortForPayload: runs shorter than this produce no payload at all (too few events).
	ShortForPayload time.Duration
	// NoPayloadRate is the chance that a workflow of a normal run produces no payload (failed fit,
	// low statistics), per class family ("Collisions", "Cosmics", "HI", "Commissioning").
	NoPayloadRate map[string]float64
	// UnchangedRate is the chance that a payload equals the previous one of its input tag (the "null"
	// payload quirk of cms-interfaces.md §5).
	UnchangedRate float64
	// Quality is the chance of each DQM quality-test outcome of a produced payload.
	WarningRate, BadRate float64
}

// DefaultParams are the documented defaults.
func DefaultParams() Params {
	return Params{
		Year: 2026, EraLetter: "A", FirstRun: 400001,
		StableBeams:    Span{6 * time.Hour, 14 * time.Hour},
		Turnaround:     Span{2 * time.Hour, 6 * time.Hour},
		HIFillFraction: 0.08,
		CollisionRun:   Span{1 * time.Hour, 10 * time.Hour}, ShortRunFraction: 0.2,
		ShortRun:         Span{30 * time.Second, 15 * time.Minute},
		CosmicsRun:       Span{10 * time.Minute, 3 * time.Hour},
		CommissioningRun: Span{15 * time.Minute, 60 * time.Minute},
		RunGap:           Span{2 * time.Minute, 6 * time.Minute}, RunNumberStep: 3,
		LumiSection:     23310 * time.Millisecond,
		ConfigureDelay:  5 * time.Minute,
		ExpressLatency:  Span{20 * time.Minute, 3 * time.Hour},
		PeriodicHarvest: 20 * time.Minute, SlowPeriodicHarvest: 6 * time.Hour,
		SlowStreams:            []string{"Calibration", "ExpressAlignment", "ALCALumiPixelsCountsExpress", "HIExpressAlignment"},
		AlcaHarvestTimeout:     12 * time.Hour,
		ConditionUploadTimeout: 18 * time.Hour,
		FeederInterval:         30 * time.Second,
		DropboxLatency:         Span{30 * time.Second, 3 * time.Minute},
		DQMLatency:             10 * time.Minute,
		RecoDelay:              48 * time.Hour, RecoLockDelay: 30 * time.Minute,
		RecoDuration:    12 * time.Hour,
		ShortForPayload: 10 * time.Minute,
		NoPayloadRate:   map[string]float64{"Collisions": 0.04, "HI": 0.06, "Cosmics": 0.3, "Commissioning": 0.7},
		UnchangedRate:   0.1,
		WarningRate:     0.08, BadRate: 0.02,
	}
}

// Check refuses parameters the world cannot run with.
func (p Params) Check() error {
	spans := map[string]Span{"stable_beams": p.StableBeams, "turnaround": p.Turnaround, "collision_run": p.CollisionRun,
		"short_run": p.ShortRun, "cosmics_run": p.CosmicsRun, "commissioning_run": p.CommissioningRun,
		"run_gap": p.RunGap, "express_latency": p.ExpressLatency, "dropbox_latency": p.DropboxLatency}
	for name, s := range spans {
		if s.Min <= 0 || s.Max < s.Min {
			return fmt.Errorf("sim params: %s: want 0 < min <= max, got %v..%v", name, s.Min, s.Max)
		}
	}
	durs := map[string]time.Duration{"lumisection": p.LumiSection, "periodic_harvest": p.PeriodicHarvest,
		"slow_periodic_harvest": p.SlowPeriodicHarvest, "alca_harvest_timeout": p.AlcaHarvestTimeout,
		"condition_upload_timeout": p.ConditionUploadTimeout, "feeder_interval": p.FeederInterval,
		"reco_delay": p.RecoDelay, "reco_lock_delay": p.RecoLockDelay}
	for name, d := range durs {
		if d <= 0 {
			return fmt.Errorf("sim params: %s must be positive, got %v", name, d)
		}
	}
	if p.RecoLockDelay >= p.RecoDelay {
		return fmt.Errorf("sim params: reco_lock_delay %v must be below reco_delay %v", p.RecoLockDelay, p.RecoDelay)
	}
	if p.Year < 2000 || p.Year > 2099 || p.EraLetter == "" {
		return fmt.Errorf("sim params: year %d / era letter %q", p.Year, p.EraLetter)
	}
	if p.FirstRun < 10 || p.FirstRun > 9_000_000 || p.RunNumberStep < 1 {
		return fmt.Errorf("sim params: first run %d / run number step %d", p.FirstRun, p.RunNumberStep)
	}
	for name, r := range map[string]float64{"hi_fill_fraction": p.HIFillFraction, "short_run_fraction": p.ShortRunFraction,
		"unchanged_rate": p.UnchangedRate, "warning_rate": p.WarningRate, "bad_rate": p.BadRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("sim params: %s %v is not a probability", name, r)
		}
	}
	return nil
}

// Faults is a fault profile: what goes wrong, how often. Rates per day are expectations of a Poisson
// process; the windows they open are drawn from the seed, so a profile is reproducible.
type Faults struct {
	Name string
	// OutagesPerDay per HTTP source (oms, tier0, dropbox, dqm), each Outage long: the source answers
	// HTTP 503 or an HTML error page with status 200.
	OutagesPerDay float64
	Outage        time.Duration
	// SlowPerDay windows of SlowWindow during which replies take SlowReply of wall time.
	SlowPerDay float64
	SlowWindow time.Duration
	SlowReply  time.Duration
	// GarbagePerDay windows of GarbageWindow during which replies are not the JSON promised.
	GarbagePerDay float64
	GarbageWindow time.Duration
	// UploadFailRate is the chance that the dropBox fails one destination tag of an upload.
	UploadFailRate float64
	// LateRate: AlcaHarvest of a workflow is late (near the 12 h timeout). VeryLateRate: it is re-run by
	// hand two days later, after PromptReco. MissingRate: the payload never comes.
	LateRate, VeryLateRate, MissingRate float64
}

// FaultProfile returns a named profile: none, default or heavy.
func FaultProfile(name string) (Faults, error) {
	switch name {
	case "none", "":
		return Faults{Name: "none"}, nil
	case "default":
		return Faults{Name: "default", OutagesPerDay: 0.25, Outage: time.Hour,
			UploadFailRate: 0.02, LateRate: 0.03, VeryLateRate: 0.003, MissingRate: 0.01}, nil
	case "heavy":
		return Faults{Name: "heavy", OutagesPerDay: 2, Outage: time.Hour,
			SlowPerDay: 4, SlowWindow: 30 * time.Minute, SlowReply: 1500 * time.Millisecond,
			GarbagePerDay: 4, GarbageWindow: 15 * time.Minute,
			UploadFailRate: 0.12, LateRate: 0.15, VeryLateRate: 0.03, MissingRate: 0.05}, nil
	}
	return Faults{}, fmt.Errorf("unknown fault profile %q (want none, default or heavy)", name)
}

// YearAt is the data-taking year of a run that starts at t: Year, or t's calendar year once the world
// has run past it (Run2027A follows Run2026A; a ten-year world names ten eras).
func (p Params) YearAt(t time.Time) int {
	return max(p.Year, t.UTC().Year())
}
