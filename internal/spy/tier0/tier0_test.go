package tier0

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
	"github.com/cms-pcl/spyagency/internal/t0envelope"
)

var t0 = time.Date(2025, 5, 30, 10, 0, 0, 0, time.UTC)

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeT0 serves bodies by "endpoint?query" (query sorted as url.Values.Encode does), with a 5 minute
// Expires as the real service, and counts the requests.
type fakeT0 struct {
	mu     sync.Mutex
	bodies map[string]string
	hits   map[string]int
}

func (f *fakeT0) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/t0wmadatasvc/prod/")
	if q := r.URL.Query().Encode(); q != "" {
		key += "?" + q
	}
	f.mu.Lock()
	f.hits[key]++
	body, ok := f.bodies[key]
	f.mu.Unlock()
	if !ok {
		body = `{"result": [` + "\n]}\n"
	}
	now := time.Now().UTC()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Date", now.Format(http.TimeFormat))
	w.Header().Set("Expires", now.Add(5*time.Minute).Format(http.TimeFormat))
	w.Write([]byte(body))
}

func (f *fakeT0) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, h := range f.hits {
		n += h
	}
	return n
}

func newFake(t *testing.T) (*fakeT0, string) {
	f := &fakeT0{hits: map[string]int{}, bodies: map[string]string{
		"firstconditionsaferun":                              readFile(t, "firstconditionsaferun.json"),
		"promptreco_status":                                  readFile(t, "run_stream_done_true.json"),
		"express_config?run=392700":                          readFile(t, "express_config.json"),
		"run_stream_done?run=392700&stream=Express":          readFile(t, "run_stream_done_true.json"),
		"run_stream_done?run=392700&stream=ExpressAlignment": readFile(t, "run_stream_done_false.json"),
		"run_stream_done?run=392700&stream=HLTMonitor":       readFile(t, "run_stream_done_false.json"),
		"reco_config?run=392700":                             readFile(t, "reco_config.json"),
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL + "/t0wmadatasvc/prod"
}

func hints(runs ...pcl.OpenRun) spy.Hints { return runner.StaticHints{Runs: runs} }

func newSpy(t *testing.T, base string, clk clock.Clock, h spy.Hints) *Spy {
	t.Helper()
	s, err := New(Config{BaseURL: base, Hints: h, Clock: clk, Catalogue: pcl.DefaultCatalogue(),
		Client: httpx.New(httpx.Options{Timeout: 5 * time.Second})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func byKind(obs []pcl.Observation) map[pcl.Kind][]pcl.Observation {
	m := map[pcl.Kind][]pcl.Observation{}
	for _, o := range obs {
		m[o.Kind] = append(m[o.Kind], o)
	}
	return m
}

func TestPollAsksAboutOpenRuns(t *testing.T) {
	t.Parallel()
	fake, base := newFake(t)
	clk := clock.NewFake(t0)
	s := newSpy(t, base, clk, hints(pcl.OpenRun{Run: 392700, Stopped: true}, pcl.OpenRun{Run: 392702}))
	res, err := s.Poll(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Observations {
		if err := o.Validate(); err != nil {
			t.Errorf("invalid observation: %v", err)
		}
		if o.Source != pcl.SourceTier0 || !o.At.Equal(t0) || !o.Seen.Equal(t0) {
			t.Errorf("observation %+v: wrong source or time", o)
		}
	}
	k := byKind(res.Observations)
	if f := k[pcl.KindFCSR]; len(f) != 1 || f[0].Run != 392701 {
		t.Errorf("FCSR %+v", f)
	}
	ec := k[pcl.KindExpressConfig]
	if len(ec) != 3 || ec[0].Stream != "Express" || ec[2].Stream != "HLTMonitor" {
		t.Fatalf("express config %+v", ec)
	}
	wantProducers := []string{"SiStripCalZeroBias", "TkAlMinBias", "PromptCalibProd", "PromptCalibProdSiStrip",
		"PromptCalibProdSiPixelAli", "PromptCalibProdSiStripGains"}
	if !slices.Equal(ec[0].Producers, wantProducers) || len(ec[2].Producers) != 0 {
		t.Errorf("producers %q / %q", ec[0].Producers, ec[2].Producers)
	}
	done := map[string]bool{}
	for _, o := range k[pcl.KindStreamDone] {
		done[o.Stream] = o.Done
	}
	if len(done) != 3 || !done["Express"] || done["ExpressAlignment"] || done["HLTMonitor"] {
		t.Errorf("stream done %v", done)
	}
	rel := k[pcl.KindRelease]
	if len(rel) != 2 || rel[0].Dataset != "JetMET0" || rel[1].Dataset != "Muon0" || rel[0].Run != 392700 {
		t.Errorf("releases %+v", rel)
	}
	if fake.hits["express_config?run=392702"] != 1 || fake.hits["reco_config?run=392702"] != 0 {
		t.Errorf("ongoing run: hits %v", fake.hits)
	}
	if on, ok := s.PromptRecoEnabled(); !ok || !on {
		t.Errorf("promptreco_status not read")
	}
	var st state
	if err := json.Unmarshal([]byte(res.Cursor), &st); err != nil || len(st.Configured[392700]) != 3 ||
		!slices.Equal(st.Done[392700], []string{"Express"}) {
		t.Errorf("cursor %s (%v)", res.Cursor, err)
	}
}

func TestCacheAndCursorAvoidPointlessQuestions(t *testing.T) {
	t.Parallel()
	fake, base := newFake(t)
	clk := clock.NewFake(t0)
	s := newSpy(t, base, clk, hints(pcl.OpenRun{Run: 392700, Stopped: true}))
	first, err := s.Poll(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	n := fake.total()
	clk.Advance(time.Minute)
	second, err := s.Poll(context.Background(), first.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if fake.total() != n {
		t.Errorf("%d requests within the 5 minute cache", fake.total()-n)
	}
	// Answers from the cache are what the service said a minute ago: that is the poll's view.
	if !first.View.Equal(t0) || !second.View.Equal(t0) {
		t.Errorf("views %s and %s, want both %s (the second poll answered from the cache)", first.View, second.View, t0)
	}
	if len(second.Observations) == 0 {
		t.Error("a cached poll must repeat what it knows, so a failed earlier poll loses nothing")
	}
	clk.Advance(5 * time.Minute)
	if third, err := s.Poll(context.Background(), first.Cursor); err != nil {
		t.Fatal(err)
	} else if !third.View.Equal(t0.Add(6 * time.Minute)) {
		t.Errorf("view after the cache expired %s, want the poll's start %s", third.View, t0.Add(6*time.Minute))
	}
	if fake.hits["express_config?run=392700"] != 1 || fake.hits["run_stream_done?run=392700&stream=Express"] != 1 {
		t.Errorf("asked again about what the cursor says is known: %v", fake.hits)
	}
	if fake.hits["run_stream_done?run=392700&stream=ExpressAlignment"] != 2 || fake.hits["firstconditionsaferun"] != 2 {
		t.Errorf("did not ask again after expiry: %v", fake.hits)
	}
}

func TestStreamsWithoutPCLWorkflowAreNotAsked(t *testing.T) {
	t.Parallel()
	fake, base := newFake(t)
	s := newSpy(t, base, clock.NewFake(t0), hints(pcl.OpenRun{Run: 392700, Stopped: true,
		Streams: []string{"PhysicsCommissioning", "bad/stream"}}))
	if _, err := s.Poll(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	for k := range fake.hits {
		if strings.Contains(k, "PhysicsCommissioning") || strings.Contains(k, "bad") {
			t.Errorf("asked %s", k)
		}
	}
}

func TestBadRepliesFailThePoll(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"wrong run":        `{"result": [{"run": 392701, "stream": "Express", "alca_skim": ""}]}`,
		"bad stream name":  `{"result": [{"run": 392700, "stream": "Express;drop", "alca_skim": ""}]}`,
		"bad producer":     `{"result": [{"run": 392700, "stream": "Express", "alca_skim": "A,B C"}]}`,
		"run as string":    `{"result": [{"run": "392700", "stream": "Express"}]}`,
		"truncated":        "{\"result\": [\n {\"run\": 392700, \"stream\": \"Exp",
		"no result":        `{"results": []}`,
		"result not array": `{"result": {"run": 392700}}`,
		"conflicting dup": `{"result": [{"run": 392700, "stream": "Express", "alca_skim": "A"},
			{"run": 392700, "stream": "Express", "alca_skim": "B"}]}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake, base := newFake(t)
			fake.bodies["express_config?run=392700"] = body
			s := newSpy(t, base, clock.NewFake(t0), hints(pcl.OpenRun{Run: 392700, Stopped: true}))
			res, err := s.Poll(context.Background(), "")
			if err == nil || len(res.Observations) != 0 {
				t.Fatalf("got %d observations and error %v", len(res.Observations), err)
			}
			if !strings.Contains(err.Error(), "express_config?run=392700") {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestSourceErrorsFailThePoll(t *testing.T) {
	t.Parallel()
	handlers := map[string]http.HandlerFunc{
		"5xx": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "Service Unavailable", 503) },
		"html": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><title>CERN Authentication</title></html>"))
		},
		"hang": func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
		"100 MB": func(w http.ResponseWriter, r *http.Request) {
			// Streamed, never allocated: the client must give up after its limit.
			w.Header().Set("Content-Type", "application/json")
			chunk := []byte(strings.Repeat(" 392700,", 8<<10))
			w.Write([]byte(`{"result": [`))
			for sent := 0; sent < 100<<20; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		},
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(h)
			defer srv.Close()
			// Only the hanging source needs a short deadline; the others must fail for what they send,
			// not because a loaded machine read their first megabyte slowly.
			timeout := 30 * time.Second
			if name == "hang" {
				timeout = 500 * time.Millisecond
			}
			s, err := New(Config{BaseURL: srv.URL, Client: httpx.New(httpx.Options{Timeout: timeout, MaxBytes: 1 << 20}),
				Hints: hints(pcl.OpenRun{Run: 392700, Stopped: true})})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Poll(context.Background(), "")
			if err == nil || len(res.Observations) != 0 {
				t.Fatalf("got %v, %v", res, err)
			}
			if name == "100 MB" && !errors.Is(err, httpx.ErrTooLarge) {
				t.Errorf("got %v, want a too-large error", err)
			}
		})
	}
}

func TestNewRefusesBadBaseURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "cmsweb.cern.ch/t0wmadatasvc", "ftp://x/y"} {
		if _, err := New(Config{BaseURL: u}); err == nil {
			t.Errorf("base %q accepted", u)
		}
	}
}

func TestDecoders(t *testing.T) {
	t.Parallel()
	if run, ok, err := DecodeFCSR([]byte(readFile(t, "firstconditionsaferun.json"))); err != nil || !ok || run != 392701 {
		t.Errorf("FCSR %d %v %v", run, ok, err)
	}
	if _, ok, err := DecodeFCSR([]byte(readFile(t, "empty.json"))); err != nil || ok {
		t.Errorf("empty FCSR: %v %v", ok, err)
	}
	for _, bad := range []string{`{"result": [0]}`, `{"result": [12345678]}`, `{"result": [1, 2]}`, `{"result": [-5]}`} {
		if _, _, err := DecodeFCSR([]byte(bad)); err == nil {
			t.Errorf("FCSR %s accepted", bad)
		}
	}
	if _, _, err := DecodeFlag([]byte(`{"result": ["true"]}`)); err == nil {
		t.Error("a string flag was accepted")
	}
	rows, err := DecodeRecoConfig([]byte(readFile(t, "reco_config.json")))
	if err != nil || len(rows) != 2 || rows[1].PrimaryDataset != "Muon0" || rows[0].GlobalTag != "150X_dataRun3_Prompt_v1" {
		t.Errorf("reco_config %+v %v", rows, err)
	}
}

func seeds(f *testing.F) {
	for _, name := range []string{"express_config.json", "reco_config.json", "firstconditionsaferun.json",
		"run_stream_done_true.json", "empty.json"} {
		f.Add([]byte(readFile(f, name)))
	}
}

func FuzzDecodeResult(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = t0envelope.Decode[json.RawMessage](data)
		_, _, _ = DecodeFCSR(data)
		_, _, _ = DecodeFlag(data)
	})
}

func FuzzDecodeExpressConfig(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := DecodeExpressConfig(data)
		if err != nil {
			return
		}
		for _, r := range rows {
			if !ValidRun(r.Run) || !ValidName(r.Stream) {
				t.Fatalf("decoder let through %+v", r)
			}
		}
	})
}

func FuzzDecodeRecoConfig(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := DecodeRecoConfig(data)
		if err == nil {
			for _, r := range rows {
				if !ValidName(r.PrimaryDataset) {
					t.Fatalf("decoder let through %+v", r)
				}
			}
		}
	})
}

func TestRunnerMarksDownSourceStale(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	base := srv.URL
	srv.Close() // the source is down
	clk := clock.NewFake(t0)
	s, err := New(Config{BaseURL: base, Clock: clk, Hints: hints(pcl.OpenRun{Run: 392700, Stopped: true})})
	if err != nil {
		t.Fatal(err)
	}
	sunk := 0
	r := runner.New(s, runner.Options{Clock: clk, Retries: -1, StaleAfter: 3,
		Sink: func(context.Context, pcl.Source, []pcl.Observation) error { sunk++; return nil }})
	for range 3 {
		if err := r.PollOnce(context.Background()); err == nil {
			t.Fatal("poll of a down source succeeded")
		}
		clk.Advance(time.Minute)
	}
	h := r.Health()
	if !h.Stale || h.Healthy || sunk != 0 || !strings.Contains(h.Error, "firstconditionsaferun") {
		t.Errorf("health %+v, %d sink calls", h, sunk)
	}
}
