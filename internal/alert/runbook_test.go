package alert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunbookIsTheDocs: docs/alerts.md gives every rule's meaning and action in the words the server's
// runbook page shows, under a heading named by the rule (the anchor the runbook links point to).
func TestRunbookIsTheDocs(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	for _, d := range Runbook() {
		if !strings.Contains(text, "\n### `"+d.Name+"`\n") {
			t.Errorf("docs/alerts.md has no heading ### `%s`", d.Name)
		}
		for what, words := range map[string]string{"meaning": d.Meaning, "action": d.Action} {
			if !strings.Contains(text, words) {
				t.Errorf("docs/alerts.md lacks the %s of %s as the runbook says it:\n%s", what, d.Name, words)
			}
		}
	}
}
