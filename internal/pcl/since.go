package pcl

import "fmt"

// TimeType is a condition DB tag's TIME_TYPE.
type TimeType string

const (
	TimeRun  TimeType = "Run"
	TimeLumi TimeType = "Lumi"
	TimeTime TimeType = "Time"
	TimeHash TimeType = "Hash"
	TimeUser TimeType = "User"
)

// ParseTimeType accepts the TIME_TYPE column's values (and their lower-case forms used in YAML).
func ParseTimeType(s string) (TimeType, error) {
	switch s {
	case "Run", "run":
		return TimeRun, nil
	case "Lumi", "lumi":
		return TimeLumi, nil
	case "Time", "time":
		return TimeTime, nil
	case "Hash", "hash":
		return TimeHash, nil
	case "User", "user":
		return TimeUser, nil
	}
	return "", fmt.Errorf("unknown time type %q (want Run, Lumi, Time, Hash or User)", s)
}

// Infinity is the end of validity "forever": 2^64-1, which SQLite files store as -1.
const Infinity = ^uint64(0)

// PackLumi makes a lumi-typed since: the run in the high 32 bits, the lumisection in the low.
func PackLumi(run uint32, lumi uint32) uint64 { return uint64(run)<<32 | uint64(lumi) }

// UnpackLumi splits a lumi-typed since.
func UnpackLumi(since uint64) (run uint32, lumi uint32) {
	return uint32(since >> 32), uint32(since & 0xffffffff)
}

// RunOfSince is the run a since points into, for the time types that have one (Run and Lumi), and 0
// otherwise.
func RunOfSince(tt TimeType, since uint64) uint32 {
	switch tt {
	case TimeRun:
		if since > 0xffffffff {
			return 0
		}
		return uint32(since)
	case TimeLumi:
		r, _ := UnpackLumi(since)
		return r
	}
	return 0
}

// SinceOfRun is the first since of a run in a tag of the given time type: the FCSR R becomes R<<32|1 for a
// lumi-typed tag.
func SinceOfRun(tt TimeType, run uint32) uint64 {
	if tt == TimeLumi {
		return PackLumi(run, 1)
	}
	return uint64(run)
}

// TagGates says whether a condition DB tag of the given synchronization (TAG.SYNCHRONIZATION,
// cms-interfaces.md §3.3) gates PromptReco: whether the IOV in effect at a run must carry the run's own
// payload before the run may go (design.md, "Matching"). pcl and prompt tags do: Tier-0's first
// condition-safe run governs them, and they are what the prompt global tag reads. In hlt and express
// tags the upload service moves a since up to the next run HLT or Express will process, and the other
// kinds (any, validation, mc, runmc, offline) are not Tier-0's: a payload there counts wherever it
// landed. Anything else, the empty string of a tag not seen yet included, gates, so that nothing is
// released on a guess.
func TagGates(synchronization string) bool {
	switch synchronization {
	case "pcl", "prompt": // first: PCL destination tags mostly are
		return true
	case "hlt", "express", "any", "validation", "mc", "runmc", "offline":
		return false
	}
	return true
}
