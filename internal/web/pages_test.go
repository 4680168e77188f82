package web

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

func fetch(t *testing.T, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// noHostileMarkup fails if a hostile string reached the page as markup.
func noHostileMarkup(t *testing.T, where, page string) {
	t.Helper()
	for _, bad := range []string{"<script>alert", "<img src=x", "onerror=alert(1)>"} {
		if strings.Contains(page, bad) {
			t.Errorf("%s: hostile markup %q reached the page", where, bad)
		}
	}
}

var rowRun = regexp.MustCompile(`<tr id="run-(\d+)"`)

func boardRuns(page string) []uint32 {
	var out []uint32
	for _, m := range rowRun.FindAllStringSubmatch(page, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 32)
		out = append(out, uint32(n))
	}
	return out
}

func seeded(t *testing.T, mod func(*Options)) (*world, string) {
	t.Helper()
	w := newWorld(t)
	w.seed()
	hs, _ := w.serve(t, mod)
	return w, hs.URL
}

func TestBoardPage(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, nil)
	code, page, h := fetch(t, base+"/")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("board: %d %s", code, h.Get("Content-Type"))
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	got := boardRuns(page)
	want := []uint32{runOngoing, runHeld, runUploading, runFailed, runReady, runReleased, runTimedOut}
	if len(got) != len(want) {
		t.Fatalf("board rows %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("board rows %v, want newest first %v", got, want)
		}
	}
	noHostileMarkup(t, "board", page)
	for _, s := range []string{
		`<th scope="col" class="wf" data-wf="SiStripGains" >`, // expected somewhere: shown
		`<span class="sr">upload-failed`,                      // the state's name for screen readers
		`title="SiPixelAli: upload-failed`,                    // and on hover
		`class="src-stale"`,                                   // the stale DQM spy in red
		`Alerts are not configured`,                           // the alerts placeholder
		`not available on this server`,                        // no first-unready function
		`role="status"`,                                       // the live region
		`href="#main"`,                                        // the skip link
		`<span class="badge rd-held"`,                         // readiness badge
		`data-live="1"`,                                       // live updates on
		`<script src="/static/app.js?v=`,                      // the script is a file, not inline
	} {
		if !strings.Contains(page, s) {
			t.Errorf("board lacks %q", s)
		}
	}
	// Below the ongoing run (whose workflows all wait for Tier-0's express configuration), no run
	// expects EcalPedestals: its column is hidden.
	if _, older, _ := fetch(t, base+"/?before=392690"); !strings.Contains(older, `<th scope="col" class="wf" data-wf="EcalPedestals" hidden>`) ||
		!strings.Contains(page, `<th scope="col" class="wf" data-wf="EcalPedestals" >`) {
		t.Error("a column no shown run expects is not hidden, or one that some run expects is")
	}
	if strings.Count(page, "<script") != 1 {
		t.Errorf("the page has inline scripts: %d <script> tags", strings.Count(page, "<script"))
	}
	// The static files are served with their types and long caching under their hash.
	m := regexp.MustCompile(`/static/app\.js\?v=[0-9a-f]+`).FindString(page)
	code, js, h := fetch(t, base+m)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") || !strings.Contains(h.Get("Cache-Control"), "immutable") || strings.Contains(js, "innerHTML") {
		t.Errorf("app.js: %d %s %s (innerHTML used: %v)", code, h.Get("Content-Type"), h.Get("Cache-Control"), strings.Contains(js, "innerHTML"))
	}
	if code, _, _ := fetch(t, base+"/static/nope.js"); code != 404 {
		t.Errorf("unknown static file: %d", code)
	}
}

func TestBoardHeaderWithFirstUnreadyAndAlerts(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, func(o *Options) {
		o.FirstUnready = firstUnreadyIs(runFailed)
		o.Alerts = AlertsFunc(func(ctx context.Context) ([]Alert, error) {
			return []Alert{{Name: "WorkflowLate", Severity: "warning", Summary: "SiPixelAli late: " + hostileTag, Details: hostileInfo, Run: runFailed}}, nil
		})
	})
	_, page, _ := fetch(t, base+"/")
	if !strings.Contains(page, `<p class="big"><a href="/runs/392675">392675</a>`) || !strings.Contains(page, "WorkflowLate") ||
		!strings.Contains(page, `SiPixelAli late: &lt;script&gt;`) {
		t.Errorf("header strip lacks the first unready run or the alert")
	}
	noHostileMarkup(t, "board header", page)
}

func TestBoardFiltersAndPaging(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, nil)
	cases := []struct {
		query string
		want  []uint32
	}{
		{"readiness=held", []uint32{runHeld}},
		{"class=" + url.QueryEscape("Cosmics*"), []uint32{runReleased}},
		{"class=Collisions25&readiness=waiting", []uint32{runUploading}},
		{"class=Collisions25&readiness=blocked", []uint32{runFailed}},
		// runFailed is blocked: the first page of "needs attention" starts with it.
		{"attention=1", []uint32{runFailed, runHeld, runUploading, runTimedOut}},
		{"before=392675", []uint32{runReady, runReleased, runTimedOut}},
		{"attention=1&limit=2", []uint32{runFailed, runHeld, runUploading}},
		{"attention=1&limit=2&before=392680", []uint32{runTimedOut}},
	}
	for _, c := range cases {
		code, page, _ := fetch(t, base+"/?"+c.query)
		got := boardRuns(page)
		if code != 200 || len(got) != len(c.want) {
			t.Errorf("?%s: %d %v, want %v", c.query, code, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("?%s: %v, want %v", c.query, got, c.want)
				break
			}
		}
	}
	// Paging: three at a time, following the "older" links to the end.
	next, seen := "/?limit=3", 0
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		_, page, _ := fetch(t, base+next)
		seen += len(boardRuns(page))
		m := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(page)
		next = ""
		if m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
			if !strings.Contains(next, "limit=3") || !strings.Contains(next, "before=") {
				t.Errorf("older link %q loses the page size or has no bound", next)
			}
		}
	}
	if seen != 7 {
		t.Errorf("paging showed %d runs in all, want 7", seen)
	}
	for _, bad := range []string{"readiness=maybe", "before=abc", "limit=-1", "class=" + url.QueryEscape("[")} {
		if code, page, _ := fetch(t, base+"/?"+bad); code != 400 || !strings.Contains(page, `id="error"`) {
			t.Errorf("?%s: %d, want a 400 page", bad, code)
		}
	}
}

func TestRunPage(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, nil)
	code, page, _ := fetch(t, base+"/runs/392680")
	if code != 200 {
		t.Fatalf("run page: %d", code)
	}
	noHostileMarkup(t, "run page", page)
	for _, s := range []string{
		`<svg xmlns="http://www.w3.org/2000/svg" class="plot" id="timeline"`,
		`role="img"`,
		`https://cmsoms.cern.ch/cms/runs/report?cms_run=392680`,
		`https://cmsweb.cern.ch/dqm/offline/start?runnr=392680`,
		// The hostile destination tag: escaped in the link's path and shown as text.
		`https://cms-conddb.cern.ch/cmsDbBrowser/list/Prod/tags/%3Cscript%3Ealert%281%29%3C%2Fscript%3E`,
		`&lt;script&gt;alert(1)&lt;/script&gt;`,
		`https://cms-conddb.cern.ch/cmsDbBrowser/list/Prod/tags/SiStripApvGain_PCL_v0_prompt`,
		`Operator actions are not available here`,
		`<th scope="row"><a href="/workflows/SiStripGains">SiStripGains</a></th>`,
	} {
		if !strings.Contains(page, s) {
			t.Errorf("run page lacks %q", s)
		}
	}
	// The failed upload: its hostile log text as text, and a link to the log by file hash.
	_, page, _ = fetch(t, base+"/runs/392675")
	noHostileMarkup(t, "failed run page", page)
	if !strings.Contains(page, `&#34;&gt;&lt;img src=x onerror=alert(1)&gt;`) || !strings.Contains(page, `/logs/dropBox/getFileLog?fileHash=0000000000000000000000000000000000392675`) {
		t.Errorf("failed run page lacks the escaped upload info or the log link")
	}
	// The held run: the operator's action in the timeline and in the audit log.
	_, page, _ = fetch(t, base+"/runs/392685")
	if !strings.Contains(page, `class="action"><title>hold by calib-shifter`) || !strings.Contains(page, `<td>calib-shifter</td>`) {
		t.Errorf("held run page lacks the operator's hold")
	}
	noHostileMarkup(t, "held run page", page)
	if code, page, _ := fetch(t, base+"/runs/1"); code != 404 || !strings.Contains(page, "not known") {
		t.Errorf("unknown run: %d", code)
	}
	if code, _, _ := fetch(t, base+"/runs/abc"); code != 400 {
		t.Errorf("bad run: %d", code)
	}
}

func TestRunPageHidesUnsafeLinks(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, func(o *Options) {
		o.Links.OMS = "javascript:alert(1)//"
		o.Links.DQMGUI = ""
	})
	_, page, _ := fetch(t, base+"/runs/392680")
	if strings.Contains(page, "javascript:") || strings.Contains(page, "OMS run report") || strings.Contains(page, "DQM GUI") {
		t.Error("a non-http base URL or an empty one still made a link")
	}
}

func TestWorkflowPages(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, nil)
	code, page, _ := fetch(t, base+"/workflows/SiStripGains")
	if code != 200 {
		t.Fatalf("workflow page: %d", code)
	}
	for _, id := range []string{"lat-harvest", "lat-upload", "lat-indb", "trend", "quality"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("workflow page lacks the %s plot", id)
		}
	}
	// SiStripGains is expected in all 7 runs (pending in the ongoing one); 4 reached the DB (released,
	// ready, failed, held), one timed out, two are not final.
	if !strings.Contains(page, "the last 7 runs") || !regexp.MustCompile(`in the DB \(success\)</th><td>4</td><td>57 %</td>`).MatchString(page) ||
		!regexp.MustCompile(`timed out</th><td>1</td>`).MatchString(page) || !regexp.MustCompile(`not final yet</th><td>2</td>`).MatchString(page) {
		t.Errorf("workflow outcomes wrong:\n%s", regexp.MustCompile(`(?s)<table class="list rates".*?</table>`).FindString(page))
	}
	if code, _, _ := fetch(t, base+"/workflows/"+url.PathEscape("BeamSpotByRun+ByLumi")); code != 200 {
		t.Errorf("workflow with + in its name: %d", code)
	}
	if code, _, _ := fetch(t, base+"/workflows/Nope"); code != 404 {
		t.Errorf("unknown workflow: %d", code)
	}
	if code, page, _ := fetch(t, base+"/workflows"); code != 200 || !strings.Contains(page, "PromptCalibProdSiPixelAli") {
		t.Errorf("workflows list: %d", code)
	}
}

func TestSourcesAndReleasesPages(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, nil)
	code, page, _ := fetch(t, base+"/sources")
	if code != 200 || !strings.Contains(page, `<tr class="src-stale"><th scope="row">dqm</th>`) || !strings.Contains(page, "HTTP 503 from the DQM GUI") {
		t.Errorf("sources page: %d", code)
	}
	noHostileMarkup(t, "sources", page)
	code, page, _ = fetch(t, base+"/releases")
	if code != 200 {
		t.Fatalf("releases page: %d", code)
	}
	noHostileMarkup(t, "releases", page)
	rel := regexp.MustCompile(`(?s)<table class="list" id="released">.*?</table>`).FindString(page)
	held := regexp.MustCompile(`(?s)<table class="list" id="held">.*?</table>`).FindString(page)
	if !strings.Contains(rel, ">392660<") || !strings.Contains(rel, ">392670<") || strings.Contains(rel, ">392685<") {
		t.Errorf("released table: %s", rel)
	}
	if !strings.Contains(held, ">392685<") || !strings.Contains(held, "<td>calib-shifter</td>") {
		t.Errorf("held table: %s", held)
	}
}

func TestOperatorFormFlow(t *testing.T) {
	t.Parallel()
	w, base := seeded(t, func(o *Options) { o.Operator = operatorLoopback; o.Banner = "demo: loopback clients may act" })
	_, page, _ := fetch(t, base+"/runs/392670")
	if !strings.Contains(page, `id="act-form"`) || !strings.Contains(page, "demo: loopback clients may act") || !strings.Contains(page, "demo-operator") {
		t.Fatal("run page lacks the operator form or the banner")
	}
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)[1]
	post := func(origin string, form url.Values) (int, string, string) {
		req, _ := http.NewRequest("POST", base+"/runs/392670/actions", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("Location")
	}
	good := url.Values{"token": {token}, "action": {"hold"}, "reason": {"pixel alignment " + hostileTag}}
	if code, _, _ := post("", good); code != 403 {
		t.Errorf("post without origin: %d", code)
	}
	if code, _, _ := post("https://evil.example", good); code != 403 {
		t.Errorf("cross-site post: %d", code)
	}
	bad := url.Values{"token": {"forged"}, "action": {"hold"}, "reason": {"x"}}
	if code, _, _ := post(base, bad); code != 403 {
		t.Errorf("forged token: %d", code)
	}
	if code, _, _ := post(base, url.Values{"token": {token}, "action": {"hold"}, "reason": {"  "}}); code != 400 {
		t.Errorf("no reason: %d", code)
	}
	if code, _, _ := post(base, url.Values{"token": {token}, "action": {"accept"}, "reason": {"x"}}); code != 400 {
		t.Errorf("accept without workflow: %d", code)
	}
	// The first post only asks for confirmation: nothing changes yet.
	code, confirm, _ := post(base, good)
	if code != 200 || !strings.Contains(confirm, `name="confirm" value="yes"`) {
		t.Fatalf("review step: %d", code)
	}
	noHostileMarkup(t, "confirm page", confirm)
	if rs, _ := w.st.RunState(w.ctx, runReady); rs.Decision.State != pcl.ReadinessReady {
		t.Fatalf("the review step changed the run: %s", rs.Decision.State)
	}
	confirmed := url.Values{"token": {token}, "action": {"hold"}, "reason": {good.Get("reason")}, "confirm": {"yes"}}
	code, _, loc := post(base, confirmed)
	if code != 303 || loc != "/runs/392670?done=hold" {
		t.Fatalf("confirm: %d %q", code, loc)
	}
	rs, err := w.st.RunState(w.ctx, runReady)
	if err != nil || rs.Decision.State != pcl.ReadinessHeld || !strings.Contains(rs.Decision.Reason, "demo-operator") {
		t.Errorf("after the confirmed hold: %+v %v", rs.Decision, err)
	}
	_, page, _ = fetch(t, base+loc)
	if !strings.Contains(page, "Applied: hold") || !strings.Contains(page, "<td>demo-operator</td>") {
		t.Error("run page after the action lacks the confirmation or the audit entry")
	}
	noHostileMarkup(t, "run page after action", page)
}

func TestOperatorFormClosedWithoutAccess(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, func(o *Options) {
		o.Operator = operatorFunc(func(*http.Request) (string, error) {
			return "", apperr.Errorf(apperr.Forbidden, "log in with the operator role")
		})
	})
	_, page, _ := fetch(t, base+"/runs/392670")
	if strings.Contains(page, `id="act-form"`) || !strings.Contains(page, "log in with the operator role") {
		t.Error("the form shows to a client that may not act, or the page does not say why")
	}
	req, _ := http.NewRequest("POST", base+"/runs/392670/actions", strings.NewReader("token=x&action=hold&reason=y"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("post without access: %d", resp.StatusCode)
	}
}
