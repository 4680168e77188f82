package dqm

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/fixtures"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
)

var t0 = time.Date(2025, 5, 30, 10, 0, 0, 0, time.UTC)

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mockDBFile is the real DQM GUI frontend mock database.
var mockDBFile = []string{"dqmgui", "dqmgui_frontend_mocks", "db.json"}

// mockDB returns the entries of the real DQM GUI frontend mock database, or skips (fails, when fixtures
// are required).
func mockDB(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	return parseMockDB(t, fixtures.Read(t, mockDBFile...))
}

// mockDBSeeds is mockDB for the fuzz targets, which have seeds of their own: nil when absent.
func mockDBSeeds(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	b, ok := fixtures.ReadIfPresent(t, mockDBFile...)
	if !ok {
		return nil
	}
	return parseMockDB(t, b)
}

func parseMockDB(t testing.TB, b []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRealNewGUIRepliesDecode(t *testing.T) {
	t.Parallel()
	db := mockDB(t)
	samples, err := DecodeSamplesV1(db["samples"])
	if err != nil || len(samples) != 1 || samples[0].Run != 503335 || samples[0].Dataset != "/Global/Online/ALL" {
		t.Fatalf("samples %+v %v", samples, err)
	}
	var generic struct {
		Data []map[string]any `json:"data"`
	}
	for _, key := range []string{"all", "summary"} {
		f, err := DecodeArchiveV1(db[key])
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		json.Unmarshal(db[key], &generic)
		if len(f.Subdirs)+len(f.MEs) != len(generic.Data) || len(generic.Data) == 0 {
			t.Errorf("%s: %d subdirs + %d MEs, reply has %d entries", key, len(f.Subdirs), len(f.MEs), len(generic.Data))
		}
		if QualityOf(f) != pcl.QualityUnknown {
			t.Errorf("%s: no quality tests ran, yet quality %s", key, QualityOf(f))
		}
	}
	if f, _ := DecodeArchiveV1(db["summary"]); len(f.MEs) == 0 || f.MEs[0].Name != "reportSummaryMap" {
		t.Errorf("summary MEs %+v", f.MEs)
	}
}

func TestQualityOfWorstWins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		statuses [][]int
		want     pcl.Quality
	}{
		{nil, pcl.QualityUnknown},
		{[][]int{{}}, pcl.QualityUnknown},
		{[][]int{{100}, {100}}, pcl.QualityGood},
		{[][]int{{100, 30}}, pcl.QualityUnknown},
		{[][]int{{100}, {200, 30}}, pcl.QualityWarning},
		{[][]int{{300}, {200}, {100}}, pcl.QualityBad},
		// Every test says 30: the DQM GUI's word that the harvest found too few events.
		{[][]int{{30}, {30, 30}}, pcl.QualityInsufficient},
		{[][]int{{30}, {}}, pcl.QualityInsufficient},
		{[][]int{{30}, {300}}, pcl.QualityBad},
	} {
		var f Folder
		for _, st := range tc.statuses {
			f.MEs = append(f.MEs, ME{Statuses: st})
		}
		if got := QualityOf(f); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.statuses, got, tc.want)
		}
	}
}

type gui struct {
	mu     sync.Mutex
	routes map[string][]byte // path (unescaped) → body; absent → 404
	hits   []string
}

func (g *gui) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.hits = append(g.hits, r.URL.RequestURI())
	body, ok := g.routes[r.URL.Path]
	g.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func start(t *testing.T, routes map[string][]byte) (*gui, string) {
	g := &gui{routes: routes}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv.URL + "/dqm/offline"
}

func openRun() spy.Hints {
	return runner.StaticHints{Runs: []pcl.OpenRun{{Run: 392700, Stopped: true}, {Run: 392702}}}
}

const gainsV2 = "/StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v2/ALCAPROMPT"

func TestClassicGUI(t *testing.T) {
	t.Parallel()
	g, base := start(t, map[string][]byte{
		"/dqm/offline/data/json/samples":                                             testdata(t, "samples_classic.json"),
		"/dqm/offline/data/json/archive/392700" + gainsV2 + "/AlCaReco/SiStripGains": testdata(t, "archive_classic.json"),
		"/dqm/offline/data/json/archive/392700/StreamExpress/Run2025C-PromptCalibProdSiStrip-Express-v1/ALCAPROMPT/SiStrip/BadStrips": []byte(`{"contents": [{"obj": "x", "qresults": [{"status": 100}]}]}`),
	})
	s, err := New(Config{BaseURL: base, Hints: openRun(), Clock: clock.NewFake(t0),
		Folders: map[string]string{"SiStripQuality": "SiStrip/BadStrips"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Poll(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pcl.Observation{}
	for _, o := range res.Observations {
		if err := o.Validate(); err != nil {
			t.Error(err)
		}
		got[o.Workflow] = o
	}
	// SiPixelAli's folder is absent (404): no observation rather than a guess.
	if len(got) != 2 || got["SiStripGains"].Quality != pcl.QualityWarning || got["SiStripQuality"].Quality != pcl.QualityGood {
		t.Fatalf("observations %+v", res.Observations)
	}
	if got["SiStripGains"].Dataset != gainsV2 || got["SiStripGains"].Run != 392700 || !got["SiStripGains"].At.Equal(t0) {
		t.Errorf("SiStripGains %+v", got["SiStripGains"])
	}
	for _, h := range g.hits {
		if strings.Contains(h, "392702") {
			t.Errorf("asked about the ongoing run: %s", h)
		}
	}
}

func TestNewGUI(t *testing.T) {
	t.Parallel()
	_, base := start(t, map[string][]byte{
		"/dqm/offline/api/v1/samples": testdata(t, "samples_v1.json"),
		"/dqm/offline/api/v1/archive/392700/StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT/AlCaReco/SiStripGains": testdata(t, "archive_v1.json"),
	})
	s, err := New(Config{BaseURL: base, API: APIV1, Hints: openRun(), Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Poll(context.Background(), "")
	if err != nil || len(res.Observations) != 1 || res.Observations[0].Quality != pcl.QualityBad {
		t.Fatalf("%+v %v", res.Observations, err)
	}
}

func TestBadRepliesFail(t *testing.T) {
	t.Parallel()
	cases := map[string][2]string{
		"other run":      {`{"samples": [{"items": [{"run": "392701", "dataset": "/A/B/C"}]}]}`, ""},
		"bad dataset":    {`{"samples": [{"items": [{"run": "392700", "dataset": "/A/B"}]}]}`, ""},
		"run as bool":    {`{"samples": [{"items": [{"run": true, "dataset": "/A/B/C"}]}]}`, ""},
		"no samples":     {`{"data": []}`, ""},
		"archive trunc":  {"", `{"contents": [{"obj": "x", "qresults": [{"status": 1`},
		"status as text": {"", `{"contents": [{"obj": "x", "qresults": [{"status": "ok"}]}]}`},
		"no status":      {"", `{"contents": [{"obj": "x", "qresults": [{"result": 1}]}]}`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			samples, archive := c[0], c[1]
			if samples == "" {
				samples = string(testdata(t, "samples_classic.json"))
			}
			routes := map[string][]byte{"/dqm/offline/data/json/samples": []byte(samples)}
			if archive != "" {
				routes["/dqm/offline/data/json/archive/392700"+gainsV2+"/AlCaReco/SiStripGains"] = []byte(archive)
			}
			_, base := start(t, routes)
			s, _ := New(Config{BaseURL: base, Hints: openRun(), Clock: clock.NewFake(t0)})
			res, err := s.Poll(context.Background(), "")
			if err == nil || len(res.Observations) != 0 {
				t.Fatalf("got %v, %+v", err, res.Observations)
			}
			if !strings.Contains(err.Error(), "/dqm/offline/data/json/") {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestSourceFailures(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]http.HandlerFunc{
		"5xx": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) },
		"html": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html/>"))
		},
		"hang": func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(h)
			defer srv.Close()
			s, _ := New(Config{BaseURL: srv.URL, Hints: openRun(), Client: httpx.New(httpx.Options{Timeout: 100 * time.Millisecond})})
			if res, err := s.Poll(context.Background(), ""); err == nil || len(res.Observations) != 0 {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestConfigChecks(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{BaseURL: "dqm"},
		{BaseURL: "http://x", API: "v2"},
		{BaseURL: "http://x", Folders: map[string]string{"NoSuchWorkflow": "A/B"}},
		{BaseURL: "http://x", Folders: map[string]string{"SiStripGains": "../etc"}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

func FuzzDecodeSamples(f *testing.F) {
	f.Add(testdata(f, "samples_classic.json"))
	f.Add(testdata(f, "samples_v1.json"))
	if db := mockDBSeeds(f); db != nil {
		f.Add([]byte(db["samples"]))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, dec := range []func([]byte) ([]Sample, error){DecodeSamples, DecodeSamplesV1} {
			ss, err := dec(data)
			if err != nil {
				continue
			}
			for _, s := range ss {
				if s.Run == 0 || !datasetRE.MatchString(s.Dataset) {
					t.Fatalf("decoder let through %+v", s)
				}
			}
		}
	})
}

func FuzzDecodeArchive(f *testing.F) {
	f.Add(testdata(f, "archive_classic.json"))
	f.Add(testdata(f, "archive_v1.json"))
	if db := mockDBSeeds(f); db != nil {
		f.Add([]byte(db["all"]))
		f.Add([]byte(db["summary"]))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, dec := range []func([]byte) (Folder, error){DecodeArchive, DecodeArchiveV1} {
			if fo, err := dec(data); err == nil && !QualityOf(fo).Valid() {
				t.Fatalf("invalid quality for %+v", fo)
			}
		}
	})
}

// The classic GUI is asked for the samples of all stopped open runs at once, its run parameter a
// regular expression of them; more runs than one query names take more queries.
func TestClassicSamplesInOneQuery(t *testing.T) {
	t.Parallel()
	archive := testdata(t, "archive_classic.json")
	var mu sync.Mutex
	var queries []url.Values
	// A GUI that answers as the real one does: the samples of the runs its run pattern matches (here
	// only 392700 has any).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/dqm/offline/data/json/samples":
			mu.Lock()
			queries = append(queries, r.URL.Query())
			mu.Unlock()
			re, err := regexp.Compile(r.URL.Query().Get("run"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			items := ""
			if re.MatchString("392700") {
				items = `{"type": "offline_data", "run": "392700", "dataset": "` + gainsV2 + `", "version": "", "importversion": 1}`
			}
			w.Write([]byte(`{"samples": [{"type": "offline_data", "items": [` + items + `]}]}`))
		case "/dqm/offline/data/json/archive/392700" + gainsV2 + "/AlCaReco/SiStripGains":
			w.Write(archive)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	open := []pcl.OpenRun{{Run: 392702}} // ongoing: not asked about
	for r := uint32(392650); r <= 392700; r++ {
		open = append(open, pcl.OpenRun{Run: r, Stopped: true})
	}
	s, err := New(Config{BaseURL: srv.URL + "/dqm/offline", Hints: runner.StaticHints{Runs: open}, Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Poll(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Observations) != 1 || res.Observations[0].Run != 392700 || res.Observations[0].Workflow != "SiStripGains" {
		t.Fatalf("observations %+v", res.Observations)
	}
	// 51 stopped runs: one query of samplesPerQuery runs, one of the other 11.
	if len(queries) != 2 {
		t.Fatalf("%d samples queries for 51 runs, want 2: %v", len(queries), queries)
	}
	first, second := queries[0].Get("run"), queries[1].Get("run")
	re1, re2 := regexp.MustCompile(first), regexp.MustCompile(second)
	for r := 392650; r <= 392700; r++ {
		rs := strconv.Itoa(r)
		if re1.MatchString(rs) == re2.MatchString(rs) {
			t.Errorf("run %s: matched by %t and %t of the two queries, want exactly one", rs, re1.MatchString(rs), re2.MatchString(rs))
		}
	}
	for _, rs := range []string{"392702", "3926500", "39265", "1392650"} {
		if re1.MatchString(rs) || re2.MatchString(rs) {
			t.Errorf("the run patterns %q, %q match %s", first, second, rs)
		}
	}
}
