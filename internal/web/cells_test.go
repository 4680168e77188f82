package web

import (
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The board's cells are written in Go, not by html/template: every source string must still be escaped,
// in attributes (quotes) and in text.
func TestCellsHTMLEscapes(t *testing.T) {
	t.Parallel()
	ws := pcl.WorkflowStatus{Name: `Wf"><script>alert(1)</script>`, State: pcl.StateUploadFailed, Reason: hostileInfo + ` ' onmouseover='alert(2)`,
		Flags: []pcl.Flag{pcl.FlagAtRisk}, Quality: pcl.QualityBad}
	c := cellOf(ws, []string{ws.Name})
	out := string(cellsHTML([]boardCell{c}, map[string]bool{ws.Name: true}))
	for _, bad := range []string{"<script", "<img", `"><`, `' onmouseover='`} {
		if strings.Contains(out, bad) {
			t.Errorf("cell HTML carries %q unescaped: %s", bad, out)
		}
	}
	for _, want := range []string{`class="cell st-upload-failed blocking at-risk q-bad"`, ` hidden>`, `<span class="sym" aria-hidden="true">✗</span>`,
		`<span class="mark" aria-hidden="true">Q!</span>`, `<span class="sr">upload-failed, blocking, at-risk, DQM quality bad</span>`} {
		if !strings.Contains(out, want) {
			t.Errorf("cell HTML lacks %q: %s", want, out)
		}
	}
}
