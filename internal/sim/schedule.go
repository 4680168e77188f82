package sim

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Family is the kind of run, as the default class rules of the config package name it (without the
// year): the OMS attributes the simulator gives a run are chosen so that those rules derive it.
type Family string

const (
	Collisions    Family = "Collisions"
	Cosmics       Family = "Cosmics"
	HI            Family = "HI"
	Commissioning Family = "Commissioning"
)

// RunPlan is a run as OMS knows it once it stopped.
type RunPlan struct {
	Number      uint32
	Family      Family
	Start, Stop time.Time
	Fill        *int
	HLTKey      string
	L1Key       string
	FillType    string // OMS fill_type_runtime
	StableBeam  bool
	BField      float64
	Energy      float64
	Components  []string
	Short       bool // stopped early (minutes)
}

// Class is the Run Registry style class the default rules derive: the family and the two-digit year.
func (r RunPlan) Class() string { return fmt.Sprintf("%s%02d", r.Family, r.Start.UTC().Year()%100) }

// Lumis is the number of lumisections of a run that lasted d.
func (p Params) Lumis(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(d / p.LumiSection)
}

// Streams are the express streams Tier-0 runs for a family (cms-interfaces.md §1 item 2).
func Streams(f Family) []string {
	switch f {
	case Collisions:
		return []string{"ALCALumiPixelsCountsExpress", "ALCAPPSExpress", "Calibration", "Express", "ExpressAlignment", "HLTMonitor"}
	case Cosmics:
		return []string{"ExpressCosmics"}
	case HI:
		return []string{"HIExpress", "HIExpressAlignment"}
	}
	return []string{"Express", "HLTMonitor"}
}

// Datasets are the primary datasets PromptReco is released for.
func Datasets(f Family) []string {
	switch f {
	case Collisions:
		return []string{"EGamma0", "JetMET0", "Muon0", "ZeroBias"}
	case Cosmics:
		return []string{"Cosmics", "NoBPTX"}
	case HI:
		return []string{"HIForward0", "HIPhysicsRawPrime0"}
	}
	return []string{"MinimumBias", "ZeroBias"}
}

var (
	allComponents     = []string{"CSC", "CTPPS", "CTPPS_TOT", "DAQ", "DCS", "DQM", "DT", "ECAL", "ES", "GEM", "HCAL", "L1SCOUT", "PIXEL", "RPC", "TCDS", "TRACKER", "TRG"}
	cosmicsComponents = []string{"CSC", "CTPPS", "DAQ", "DCS", "DQM", "DT", "ECAL", "ES", "L1SCOUT", "PIXEL", "RPC", "TCDS", "TRACKER", "TRG"}
)

// schedule draws fills and runs one LHC cycle at a time from its own random stream, so that the runs
// do not depend on how the world is advanced.
type schedule struct {
	p    Params
	rng  *rand.Rand
	t    time.Time // end of what is planned
	run  uint32
	fill int
}

func newSchedule(p Params, seed uint64, start time.Time) *schedule {
	return &schedule{p: p, rng: rand.New(rand.NewPCG(seed, 0x5c4ed)), t: start, run: p.FirstRun - 1, fill: 11000}
}

// span draws a duration in s, whole seconds, as OMS gives times.
func span(rng *rand.Rand, s Span) time.Duration {
	d := s.Min
	if s.Max > s.Min {
		d += time.Duration(rng.Int64N(int64(s.Max - s.Min + 1)))
	}
	if d = d.Truncate(time.Second); d < time.Second {
		d = time.Second
	}
	return d
}

// cycle plans one fill: a commissioning run with circulating beams, collisions runs through stable
// beams, then cosmics during the turnaround.
func (s *schedule) cycle() []RunPlan {
	s.fill++
	fill := s.fill
	hi := s.rng.Float64() < s.p.HIFillFraction
	year := s.p.YearAt(s.t) // the fill's keys and menus carry the year it starts in
	var out []RunPlan
	fillType, physicsKey, energy := "PROTONS", fmt.Sprintf("/cdaq/physics/Run%d/2e34/v1.2.0/HLT/V3", year), 6800.0
	if hi {
		fillType, physicsKey, energy = "PB", fmt.Sprintf("/cdaq/physics/Run%dHI/PbPb/v1.0.0/HLT/V2", year), 5360.0
	}
	out = append(out, s.emit(Commissioning, span(s.rng, s.p.CommissioningRun), func(r *RunPlan) {
		r.Fill, r.FillType, r.Energy = &fill, fillType, 450
		r.HLTKey = fmt.Sprintf("/cdaq/circulating/%d/v1.0.0/HLT/V4", year)
		r.L1Key = fmt.Sprintf("l1_trg_circulating%d/v15", year)
	}))
	end := s.t.Add(span(s.rng, s.p.StableBeams))
	family := Collisions
	if hi {
		family = HI
	}
	for s.t.Before(end.Add(-10 * time.Minute)) {
		d, short := span(s.rng, s.p.CollisionRun), false
		if s.rng.Float64() < s.p.ShortRunFraction {
			d, short = span(s.rng, s.p.ShortRun), true
		}
		if left := end.Sub(s.t); d > left {
			d = left.Truncate(time.Second)
		}
		out = append(out, s.emit(family, d, func(r *RunPlan) {
			r.Fill, r.FillType, r.Energy, r.StableBeam, r.Short = &fill, fillType, energy, true, short
			r.HLTKey, r.L1Key = physicsKey, fmt.Sprintf("l1_trg_collisions%d/v42", year)
		}))
	}
	end = s.t.Add(span(s.rng, s.p.Turnaround))
	for s.t.Before(end.Add(-5 * time.Minute)) {
		d := span(s.rng, s.p.CosmicsRun)
		if left := end.Sub(s.t); d > left {
			d = left.Truncate(time.Second)
		}
		out = append(out, s.emit(Cosmics, d, func(r *RunPlan) {
			r.Fill, r.FillType, r.Energy = &fill, "COSMICS", 0
			r.HLTKey = fmt.Sprintf("/cdaq/cosmic/commissioning%d/v1.1.0/HLT/V3", year)
			r.L1Key = fmt.Sprintf("l1_trg_cosmics%d/v12", year)
			r.Components = cosmicsComponents
		}))
	}
	return out
}

func (s *schedule) emit(f Family, d time.Duration, set func(*RunPlan)) RunPlan {
	s.run += 1 + uint32(s.rng.IntN(s.p.RunNumberStep))
	start := s.t.Add(span(s.rng, s.p.RunGap))
	r := RunPlan{Number: s.run, Family: f, Start: start, Stop: start.Add(d), BField: 3.8, Components: allComponents}
	set(&r)
	s.t = r.Stop
	return r
}
