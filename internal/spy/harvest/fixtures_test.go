package harvest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cms-pcl/spyagency/internal/fixtures"
)

// metadataFixtures returns the 39 real dropBox metadata JSONs by file name, each compacted onto one line
// as a harvest .txt carries it.
func metadataFixtures(t testing.TB) map[string][]byte {
	t.Helper()
	dir := fixtures.Path(t, "dropbox-metadata")
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no metadata fixtures in %s: %v", dir, err)
	}
	sort.Strings(names)
	out := map[string][]byte{}
	for _, n := range names {
		raw, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out[filepath.Base(n)] = b.Bytes()
	}
	return out
}
