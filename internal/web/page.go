package web

import (
	"html/template"
	"net/http"
	"time"

	"github.com/cms-pcl/spyagency/internal/store"
)

// The plain page: every run with its readiness and workflow states, rendered on the server by
// html/template (which escapes everything the sources wrote). The full operators' page replaces it.
var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"ago": func(now time.Time, t *time.Time) string {
		if t == nil {
			return "ongoing"
		}
		return now.Sub(*t).Round(time.Minute).String() + " ago"
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10">
<title>Spy Agency: PCL runs</title>
<style>
body{font-family:system-ui,sans-serif;background:#111;color:#ddd;margin:1rem}
table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #333;padding:.2rem .4rem;text-align:left}
.ready,.released,.forced,.in-db,.not-expected,.accepted{color:#7c7}.waiting,.pending,.awaiting-harvest,.harvested,.uploading,.uploaded{color:#dd7}
.held,.timed-out,.upload-failed,.too-late{color:#f77}.banner{background:#543;padding:.4rem;margin-bottom:.5rem}
</style></head><body>
<h1>Spy Agency: PCL runs</h1>
{{if .Banner}}<p class="banner">{{.Banner}}</p>{{end}}
<p>Simulated or real time now: {{.Now.Format "2006-01-02 15:04 MST"}}. {{len .Runs}} newest runs. The page reloads every 10 s; the JSON API is at <a href="/api/v1/runs">/api/v1/runs</a>.</p>
<table><thead><tr><th>run</th><th>class</th><th>stopped</th><th>readiness</th><th>reason</th><th>workflows (state)</th></tr></thead><tbody>
{{range .Runs}}<tr><td>{{.Run}}</td><td>{{.Class}}</td><td>{{ago $.Now .Stop}}</td>
<td class="{{.Readiness.State}}">{{.Readiness.State}} v{{.Readiness.Version}}</td><td>{{.Readiness.Reason}}</td>
<td>{{range .Workflows}}{{if ne .State "not-expected"}}<span class="{{.State}}" title="{{.Reason}}">{{.Name}}: {{.State}}</span>; {{end}}{{end}}</td></tr>
{{else}}<tr><td colspan="6">No runs seen yet.</td></tr>{{end}}
</tbody></table></body></html>`))

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	states, err := s.o.Store.RunStates(r.Context(), store.RunQuery{Limit: 200})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views := make([]RunView, 0, len(states))
	for _, rs := range states {
		views = append(views, viewOf(rs))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'")
	_ = pageTmpl.Execute(w, struct {
		Now    time.Time
		Runs   []RunView
		Banner string
	}{s.o.Clock.Now(), views, s.o.Banner})
}
