package cli

import (
	"os"
	"runtime/debug"
	"testing"
)

// The batch commands raise the collector's target for their run and put it back after; a GOGC the
// user set wins. Not parallel: the target is the process's.
func TestBatchGC(t *testing.T) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		t.Skipf("GOGC=%s is set for this test process", v)
	}
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	restore := batchGC()
	if got := debug.SetGCPercent(batchGCPercent); got != batchGCPercent {
		t.Errorf("during a batch command the GC percent is %d, want %d", got, batchGCPercent)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after it the GC percent is %d, want 100 again", got)
	}
	t.Setenv("GOGC", "150")
	restore = batchGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set the command changed the GC percent to %d", got)
	}
	restore()
}
