package pcl

import (
	"fmt"
	"testing"
)

// TestTagTable: every tag is found at its index, and nothing else is found, including tags that share
// every byte the table's hash samples and strings that are prefixes or extensions of known tags.
func TestTagTable(t *testing.T) {
	t.Parallel()
	idx := map[string]int{}
	for _, w := range DefaultWorkflows() {
		for _, in := range w.Inputs {
			if _, ok := idx[in.Tag]; !ok {
				idx[in.Tag] = len(idx)
			}
		}
	}
	// Same length and same sampled bytes (first quarter, middle, three quarters, last): only the
	// unsampled bytes differ, so these all start their probe at the same slot.
	for i := range 40 {
		tag := fmt.Sprintf("A%02dBBBBBBBBBBBBBBBBBBBB", i)
		idx[tag] = len(idx)
	}
	tt := newTagTable(idx)
	for tag, want := range idx {
		if got, ok := tt.index(tag); !ok || got != want {
			t.Errorf("index(%q) = %d, %v; want %d", tag, got, ok, want)
		}
	}
	for _, unknown := range []string{"", "x", "SiStripApvGain_pc", "SiStripApvGain_pcl_", "A40BBBBBBBBBBBBBBBBBBBB",
		"A00BBBBBBBBBBBBBBBBBBB", "\xff\x00SiStripApvGain_pcl"} {
		if i, ok := tt.index(unknown); ok {
			t.Errorf("index(%q) found %d", unknown, i)
		}
	}
	var zero tagTable
	if _, ok := zero.index("SiStripApvGain_pcl"); ok {
		t.Error("a zero table found a tag")
	}
	if got := 4 * len(idx); got > len(tt.slots) {
		t.Errorf("table of %d slots holds %d tags: more than a quarter full", len(tt.slots), len(idx))
	}
}
