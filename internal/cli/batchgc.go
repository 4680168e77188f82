package cli

import (
	"os"
	"runtime/debug"
)

// batchGCPercent is the garbage collector's target for the batch commands (study, simulate --fast):
// their heap is a few hundred MiB of simulated worlds that live to the end, and at Go's default
// (100) a fifth of their CPU went to collecting it again and again. Four times the live heap between
// collections costs memory the machine has (the 28-day study peaks near 400 MiB) and saves most of
// that CPU.
const batchGCPercent = 400

// batchGC sets the collector for a batch command and returns what puts it back. A GOGC the user set
// is kept as it is.
func batchGC() (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	prev := debug.SetGCPercent(batchGCPercent)
	return func() { debug.SetGCPercent(prev) }
}
