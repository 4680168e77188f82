package study

import (
	"testing"
	"time"
)

// BenchmarkAgencyWorld is the cost of one agency world: a day of measured runs (three simulated days,
// 4,320 one-minute steps of the stepped demo, every spy on its real interval), beside the fixed world
// it is compared with. The study runs two such worlds of 30 days at once; profile it with
// -cpuprofile to see where a step goes (docs/benchmarks.md, "The release-latency study").
func BenchmarkAgencyWorld(b *testing.B) {
	for b.Loop() {
		res, err := Run(b.Context(), Options{Days: 1, Seed: 1, Faults: "default", Policies: []string{Fixed48h, Agency}})
		if err != nil {
			b.Fatal(err)
		}
		p, ok := res.Policy(Agency)
		if !ok || p.Runs == 0 {
			b.Fatalf("no agency result: %+v", res.Policies)
		}
		steps := 3 * 24 * 60
		b.ReportMetric(float64(res.Elapsed)/float64(steps)/float64(time.Millisecond), "ms/step")
	}
}
