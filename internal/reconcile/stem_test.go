package reconcile

import (
	"math/rand/v2"
	"testing"
)

// TestNamesLatestIsStemEquality: latestName.names' shortcuts (the same name, the stem followed by suffixes) answer
// exactly what comparing the stems answers, for names drawn from the characters that matter to stems.
func TestNamesLatestIsStemEquality(t *testing.T) {
	t.Parallel()
	named := [][2]string{
		{fileName("SiStripApvGain_pcl"), "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.txt.uploaded"},
		{fileName("SiStripApvGain_pcl"), "dir/Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.txt"},
		{fileName("SiStripApvGain_pcl"), "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.x/y"},
		{fileName("SiStripApvGain_pcl"), "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.x@y.z"},
		{"a.b@c", "a.b@c.txt"}, {"a.b@c.db", "a.b@c.d@e"}, {"abc", "abc.txt"}, {".db", ".txt"}, {"x/a.db", "a.txt"},
	}
	r := rand.New(rand.NewPCG(1, 2))
	draw := func() string {
		b := make([]byte, r.IntN(9))
		for i := range b {
			b[i] = "ab./@"[r.IntN(5)]
		}
		return string(b)
	}
	for range 50000 {
		a := draw()
		named = append(named, [2]string{a, a + draw()}, [2]string{draw(), draw()})
	}
	for _, p := range named {
		l := latestName{file: p[0]}
		if got, want := l.names(p[1]), stem(p[0]) == stem(p[1]); got != want {
			t.Fatalf("names(%q) of latest %q = %v, stems say %v", p[1], p[0], got, want)
		}
	}
}
