package reconcile

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// FuzzReconcile feeds the reconcile any observations that decode from JSON (what the store keeps):
// it must not panic, and the safety invariant must hold, whatever the spies sent.
func FuzzReconcile(f *testing.F) {
	// Small seeds: the fuzzer mutates bytes, and tens of kilobytes of JSON would starve it.
	add := func(obs []pcl.Observation, now time.Duration) {
		b, _ := json.Marshal(obs)
		f.Add(b, int64(now/time.Second))
	}
	add(concat(one(stopped()), gainsInDB(h1), collisionsConfig()), 2*time.Hour)
	add(concat(one(stopped(), streamDone("Express", time.Hour)), collisionsConfig()), 3*time.Hour)
	add(one(stopped(), override(pcl.OverrideHold, "", time.Hour), release(2*time.Hour)), 3*time.Hour)
	for i := range 4 {
		obs, _, now, _, _ := randomWorld(rand.New(rand.NewPCG(uint64(i), 0xf0)))
		add(obs[:min(len(obs), 8)], now)
	}
	f.Fuzz(func(t *testing.T, data []byte, nowSeconds int64) {
		var obs []pcl.Observation
		if err := json.Unmarshal(data, &obs); err != nil {
			return
		}
		for _, p := range []pcl.Policy{pcl.DefaultPolicy(), onlyGains(pcl.OnTimeoutHold)} {
			rs := Reconcile(Input{Run: testRun, Observations: obs, Catalogue: catalog, Policy: p,
				Sources: freshSources(time.Duration(nowSeconds%(100*3600)) * time.Second),
				Now:     at(time.Duration(nowSeconds%(100*3600)) * time.Second)})
			checkInvariant(t, rs, p)
		}
	})
}
