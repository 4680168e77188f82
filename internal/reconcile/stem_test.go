package reconcile

import (
	"math/rand/v2"
	"testing"
)

// TestNamesLatest: a marker or upload record names the latest harvest file when pcl's reader gives both
// names the same stem, whatever directory or ending they carry; a name that is no harvest name only
// names itself.
func TestNamesLatest(t *testing.T) {
	t.Parallel()
	db := fileName("SiStripApvGain_pcl")
	tests := []struct {
		latest, other string
		want          bool
	}{
		{db, db, true},
		{db, "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.txt.uploaded", true},
		{db, "dir/Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.txt", true},
		{"/eos/x/" + db, "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.txt", true},
		{db, "Run392681@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.txt.uploaded", false},
		{db, "Run392680@SiStripApvGainAAG_pcl@0b1d6e5a-1111-2222-3333-444455556666.txt.uploaded", false},
		{db, "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556667.txt.uploaded", false},
		{db, "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.x@y.z", false},
		{db, "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.root", false},
		{"abc", "abc", true},
		{"abc", "abc.txt", false},
		{"a.b@c.db", "a.b@c.txt", false},
	}
	for _, tc := range tests {
		l := latestName{file: tc.latest}
		if got := l.names(tc.other); got != tc.want {
			t.Errorf("names(%q) of latest %q = %v, want %v", tc.other, tc.latest, got, tc.want)
		}
	}
}

// TestNamesLatestIsParsedStemEquality: names' shortcut answers what comparing the names' parsed stems
// answers, for names drawn from the pieces that matter to pcl.ParseHarvestName.
func TestNamesLatestIsParsedStemEquality(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	draw := func() string {
		return pick("", "d/", "a/b/") + pick("Run", "run", "") + pick("7", "07", "392680", "") + pick("@", "") +
			pick("T", "T_1", "T.x", "") + pick("@", "@@", "") + pick("u", "u-1", "") + pick(".db", ".txt", ".txt.uploaded", ".root", "", ".db.x")
	}
	for range 50000 {
		a, b := draw(), draw()
		l := latestName{file: a}
		na, oka := harvestName(a)
		nb, okb := harvestName(b)
		want := a == b || (oka && okb && na.SameUpload(nb))
		if got := l.names(b); got != want {
			t.Fatalf("names(%q) of latest %q = %v, parsing says %v", b, a, got, want)
		}
	}
}
