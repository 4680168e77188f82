package web

import (
	"html/template"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// cellsHTML is writeCells on its own, as the template's row called it before rowHTML.
func cellsHTML(cells []boardCell, hidden map[string]bool) template.HTML {
	var b strings.Builder
	writeCells(&b, cells, hidden)
	return template.HTML(b.String())
}

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

// rowTemplate is the board's row as the template wrote it before rowHTML (stop 23): the reference that
// rowHTML must keep to, byte for byte but for html/template's escaping of "+" as "&#43;".
const rowTemplate = `{{with .Row}}<tr id="run-{{.Run}}" data-run="{{.Run}}" class="{{if .Attention}}attention{{end}}{{if eq .Readiness "blocked"}} blocked{{end}}">
  <th scope="row"><a href="/runs/{{.Run}}">{{.Run}}</a></th>
  <td class="class">{{.Class}}</td>
  <td class="rd"><span class="badge rd-{{.Readiness}}" title="{{.Readiness}} v{{.Version}}: {{.Reason}}"><span aria-hidden="true" class="rsym">{{.ReadySym}}</span> <span class="rtext">{{.Readiness}}</span></span></td>
  <td class="since" data-stop="{{rfc3339 .Stop}}">{{ago $.Now .Stop}}</td>
  <td class="countdown" data-deadline="{{rfc3339 .Deadline}}">{{until $.Now .Deadline}}</td>
  {{cells .Cells $.Hidden}}
  <td class="reason" title="{{.Reason}}">{{.Reason}}</td>
</tr>{{end}}`

func TestRowHTMLIsTheTemplatesRow(t *testing.T) {
	t.Parallel()
	ref := template.Must(template.New("row").Funcs(template.FuncMap{"rfc3339": rfc3339, "ago": ago, "until": until, "cells": cellsHTML}).Parse(rowTemplate))
	w := newWorld(t)
	w.seed()
	states, err := w.st.RunStates(w.ctx, store.RunQuery{})
	if err != nil {
		t.Fatal(err)
	}
	names := w.cat.Names()
	var rows []boardRow
	for _, rs := range states {
		rows = append(rows, rowOf(rs, names), rowOf(rs, nil))
	}
	if len(rows) < 10 {
		t.Fatalf("only %d rows to compare", len(rows))
	}
	hostile := rowOf(pcl.RunState{Run: 4294967295, Class: hostileInfo + " & 'x' + y\x00", Decision: pcl.Decision{State: pcl.ReadinessBlocked,
		Reason: "a \"reason\" <b>&</b> 'quoted' + more\x00 NUL", Version: -1}}, nil)
	hostile.Attention, hostile.ReadySym = true, `<"sym">`
	rows = append(rows, hostile)
	// The cells are the same function in both; a NUL from a source is written as html/template would.
	if got := string(cellsHTML([]boardCell{{Name: "Wf\x00", Class: "cell", Title: "t\x00", Symbol: "s", Mark: "m", Label: "l\x00"}}, nil)); strings.ContainsRune(got, 0) ||
		strings.Count(got, "\uFFFD") != 3 {
		t.Errorf("cells with NUL bytes: %q", got)
	}
	hidden := map[string]bool{names[0]: true, names[len(names)-1]: true}
	for _, row := range rows {
		var want strings.Builder
		if err := ref.Execute(&want, struct {
			Row    boardRow
			Hidden map[string]bool
			Now    time.Time
		}{row, hidden, worldNow}); err != nil {
			t.Fatal(err)
		}
		got := string(rowHTML(row, hidden, worldNow))
		if w := strings.ReplaceAll(want.String(), "&#43;", "+"); got != w {
			t.Errorf("run %d:\nrowHTML  %s\ntemplate %s", row.Run, got, w)
		}
	}
}
