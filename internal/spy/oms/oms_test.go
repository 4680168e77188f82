package oms

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/fixtures"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// omsFixture is the real OMS reply of 15 runs of 2025 (fixtures.Read: it skips, or fails when fixtures
// are required, without it).
func omsFixture(t testing.TB) []byte { return fixtures.Read(t, "oms", "test_oms_runs.json") }

// generic is the fixture parsed without this package's decoder, to check the decoder against.
type generic struct {
	Data []struct {
		ID         string         `json:"id"`
		Attributes map[string]any `json:"attributes"`
	} `json:"data"`
}

func TestDecodeRunsReadsTheRealOMSReply(t *testing.T) {
	t.Parallel()
	data := omsFixture(t)
	p, err := DecodeRuns(data)
	if err != nil {
		t.Fatal(err)
	}
	var g generic
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(p.Runs) != 15 || len(g.Data) != 15 || p.Total != 15 || p.Next != "" {
		t.Fatalf("%d runs, total %d, next %q", len(p.Runs), p.Total, p.Next)
	}
	if p.Runs[0].Number != 392671 || p.Runs[14].Number != 392702 {
		t.Errorf("runs %d..%d", p.Runs[0].Number, p.Runs[14].Number)
	}
	nullFills := 0
	for i, r := range p.Runs {
		a := g.Data[i].Attributes
		ri := r.Info
		if strconv.Itoa(int(r.Number)) != g.Data[i].ID || float64(r.Number) != a["run_number"] {
			t.Errorf("run %d: id %s", r.Number, g.Data[i].ID)
		}
		if ri.Start.Format(time.RFC3339) != a["start_time"] || ri.Stop == nil || ri.Stop.Format(time.RFC3339) != a["end_time"] {
			t.Errorf("run %d: start/stop %v %v", r.Number, ri.Start, ri.Stop)
		}
		if ri.LastUpdate.Format(time.RFC3339) != a["last_update"] || ri.BField != a["b_field"] {
			t.Errorf("run %d: last_update/b_field", r.Number)
		}
		if f, ok := a["fill_number"].(float64); ok {
			if ri.Fill == nil || *ri.Fill != int(f) {
				t.Errorf("run %d: fill %v, want %v", r.Number, ri.Fill, f)
			}
		} else {
			nullFills++
			if ri.Fill != nil {
				t.Errorf("run %d: fill %v, want none", r.Number, *ri.Fill)
			}
		}
		if l, _ := a["last_lumisection_number"].(float64); ri.Lumis != int(l) {
			t.Errorf("run %d: lumis %d, want %v", r.Number, ri.Lumis, l)
		}
		era, _ := a["era"].(string)
		if ri.Era != era || ri.Sequence != a["sequence"] || ri.HLTKey != a["hlt_key"] ||
			ri.FillType != a["fill_type_runtime"] || ri.StableBeam != a["stable_beam"] {
			t.Errorf("run %d: %+v", r.Number, ri)
		}
		if comps, _ := a["components"].([]any); len(comps) != len(ri.Components) {
			t.Errorf("run %d: %d components, want %d", r.Number, len(ri.Components), len(comps))
		}
	}
	if nullFills != 1 {
		t.Errorf("%d runs without fill, the fixture has one", nullFills)
	}
	r0 := p.Runs[0].Info
	if *r0.Fill != 10673 || r0.Lumis != 124 || r0.Era != "Run2025C" || r0.FillType != "PROTONS" {
		t.Errorf("run 392671: %+v", r0)
	}
}

// omsServer serves the fixture's runs in pages of size per, with links.next on cmsoms.cern.ch (as the
// real service writes them) unless links is false.
type omsServer struct {
	mu    sync.Mutex
	runs  []json.RawMessage
	per   int
	links bool
	total int
	hits  []string
	// override answers instead when set
	override func(w http.ResponseWriter, r *http.Request) bool
}

func newOMS(t *testing.T, per int, links bool) (*omsServer, string) {
	t.Helper()
	var doc struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(omsFixture(t), &doc); err != nil {
		t.Fatal(err)
	}
	s := &omsServer{runs: doc.Data, per: per, links: links, total: len(doc.Data)}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL + "/agg/api/v1"
}

func (s *omsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits = append(s.hits, r.URL.RequestURI())
	override := s.override
	s.mu.Unlock()
	if override != nil && override(w, r) {
		return
	}
	if r.URL.Path != "/agg/api/v1/runs" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	off, _ := strconv.Atoi(q.Get("page[offset]"))
	end := min(off+s.per, len(s.runs))
	var next any
	if end < len(s.runs) && s.links {
		q.Set("page[offset]", strconv.Itoa(end))
		next = "https://cmsoms.cern.ch/agg/api/v1/runs?" + q.Encode()
	}
	page := s.runs[min(off, len(s.runs)):end]
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"data": page, "links": map[string]any{"next": next},
		"meta": map[string]any{"totalResourceCount": s.total}})
}

func newSpy(t *testing.T, base string, clk clock.Clock) *Spy {
	t.Helper()
	s, err := New(Config{BaseURL: base, Clock: clk, PageLimit: 4, Client: httpx.New(httpx.Options{Timeout: 5 * time.Second})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var later = time.Date(2025, 5, 31, 0, 0, 0, 0, time.UTC) // every fixture run has settled

func TestPollReadsAllPagesRebasingNext(t *testing.T) {
	t.Parallel()
	srv, base := newOMS(t, 4, true)
	s := newSpy(t, base, clock.NewFake(later))
	res, err := s.Poll(context.Background(), "392600")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Observations) != 15 || len(srv.hits) != 4 {
		t.Fatalf("%d observations in %d requests %v", len(res.Observations), len(srv.hits), srv.hits)
	}
	if !strings.Contains(srv.hits[0], "filter%5Brun_number%5D%5BGT%5D=392600") {
		t.Errorf("first request %s does not ask above the cursor", srv.hits[0])
	}
	classes := map[uint32]string{}
	for i, o := range res.Observations {
		if err := o.Validate(); err != nil {
			t.Error(err)
		}
		if i > 0 && o.Run <= res.Observations[i-1].Run {
			t.Errorf("observations out of order at %d", i)
		}
		if !o.At.Equal(o.RunInfo.LastUpdate) {
			t.Errorf("run %d: at %v, want last_update", o.Run, o.At)
		}
		classes[o.Run] = o.RunInfo.Class
	}
	if classes[392672] != "Collisions25" || classes[392679] != "Cosmics25" || classes[392692] != "Commissioning25" {
		t.Errorf("classes %v", classes)
	}
	if res.Cursor != "392702" {
		t.Errorf("cursor %q, want the last settled run", res.Cursor)
	}
	if !res.View.Equal(later) || res.Partial {
		t.Errorf("view %s (partial %v), want %s, the clock before the first page", res.View, res.Partial, later)
	}
}

func TestNoCursorReadsNewestPageOnly(t *testing.T) {
	t.Parallel()
	srv, base := newOMS(t, 100, true)
	res, err := newSpy(t, base, clock.NewFake(later)).Poll(context.Background(), "")
	if err != nil || len(res.Observations) != 15 || len(srv.hits) != 1 || !strings.Contains(srv.hits[0], "sort=-run_number") {
		t.Fatalf("%v, %d observations, hits %v", err, len(res.Observations), srv.hits)
	}
}

func TestOffsetPagingWithoutLinks(t *testing.T) {
	t.Parallel()
	srv, base := newOMS(t, 4, false)
	res, err := newSpy(t, base, clock.NewFake(later)).Poll(context.Background(), "1")
	if err != nil || len(res.Observations) != 15 || len(srv.hits) != 4 {
		t.Fatalf("%v, %d observations, hits %v", err, len(res.Observations), srv.hits)
	}
}

func TestCursorStopsBeforeUnsettledRuns(t *testing.T) {
	t.Parallel()
	_, base := newOMS(t, 100, true)
	// At 23:00 on the 29th, run 392676 (updated 18:45) has settled, but 392679 was updated at 00:20 on the
	// 30th, later than now, so the cursor stays below it and later runs are asked again next time.
	now := time.Date(2025, 5, 29, 23, 0, 0, 0, time.UTC)
	res, err := newSpy(t, base, clock.NewFake(now)).Poll(context.Background(), "392670")
	if err != nil {
		t.Fatal(err)
	}
	if res.Cursor != "392676" {
		t.Errorf("cursor %q, want 392676 (392679 was updated after now)", res.Cursor)
	}
}

func TestLoopingNextIsAnError(t *testing.T) {
	t.Parallel()
	srv, base := newOMS(t, 4, true)
	srv.override = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		var doc map[string]any
		json.Unmarshal(omsFixture(t), &doc)
		doc["links"] = map[string]any{"next": "https://cmsoms.cern.ch/agg/api/v1/runs?" + r.URL.RawQuery}
		doc["meta"] = map[string]any{"totalResourceCount": 1000}
		json.NewEncoder(w).Encode(doc)
		return true
	}
	res, err := newSpy(t, base, clock.NewFake(later)).Poll(context.Background(), "1")
	if err == nil || !strings.Contains(err.Error(), "loops") || len(res.Observations) != 0 {
		t.Fatalf("got %v, %d observations", err, len(res.Observations))
	}
}

func TestDuplicatesKeepNewest(t *testing.T) {
	t.Parallel()
	srv, base := newOMS(t, 4, true)
	var older map[string]any
	json.Unmarshal(srv.runs[2], &older)
	older["attributes"].(map[string]any)["last_update"] = "2025-05-29T17:30:00Z"
	older["attributes"].(map[string]any)["last_lumisection_number"] = 3
	dup, _ := json.Marshal(older)
	// The stale copy comes last, on a later page, and the order is shuffled.
	srv.runs = append(append([]json.RawMessage{srv.runs[5]}, srv.runs...), dup)
	srv.total = len(srv.runs)
	res, err := newSpy(t, base, clock.NewFake(later)).Poll(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Observations) != 15 {
		t.Fatalf("%d observations", len(res.Observations))
	}
	for _, o := range res.Observations {
		if o.Run == 392673 && o.RunInfo.Lumis != 6 {
			t.Errorf("duplicate kept the stale copy: %+v", o.RunInfo)
		}
	}
}

func TestBadRepliesFail(t *testing.T) {
	t.Parallel()
	good := string(omsFixture(t))
	cases := map[string]string{
		"run as string":     strings.Replace(good, `"run_number": 392671`, `"run_number": "392671"`, 1),
		"no start":          strings.Replace(good, `"start_time": "2025-05-29T04:09:57Z"`, `"start_time": null`, 1),
		"bad time":          strings.Replace(good, `"start_time": "2025-05-29T04:09:57Z"`, `"start_time": "yesterday"`, 1),
		"stop before start": strings.Replace(good, `"end_time": "2025-05-29T04:57:47Z"`, `"end_time": "2025-05-28T04:57:47Z"`, 1),
		"id mismatch":       strings.Replace(good, `"id": "392671"`, `"id": "1"`, 1),
		"truncated":         good[:len(good)/2],
		"no data":           `{"links": {}, "meta": {}}`,
	}
	for name, body := range cases {
		if body == good {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, base := newOMS(t, 100, true)
			srv.override = func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, body)
				return true
			}
			res, err := newSpy(t, base, clock.NewFake(later)).Poll(context.Background(), "")
			if err == nil || len(res.Observations) != 0 {
				t.Fatalf("got %v, %d observations", err, len(res.Observations))
			}
			if !strings.Contains(err.Error(), "/agg/api/v1/runs") {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestSourceFailures(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]func(w http.ResponseWriter, r *http.Request) bool{
		"5xx": func(w http.ResponseWriter, r *http.Request) bool { http.Error(w, "oops", 502); return true },
		"sso page": func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><title>Sign in - CERN</title></html>")
			return true
		},
		"hang": func(w http.ResponseWriter, r *http.Request) bool { <-r.Context().Done(); return true },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, base := newOMS(t, 100, true)
			srv.override = h
			s, _ := New(Config{BaseURL: base, Clock: clock.NewFake(later), Client: httpx.New(httpx.Options{Timeout: 100 * time.Millisecond})})
			if res, err := s.Poll(context.Background(), ""); err == nil || len(res.Observations) != 0 {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestCursorAndConfigChecks(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{BaseURL: "cmsoms.cern.ch"}); err == nil {
		t.Error("a base URL without scheme was accepted")
	}
	s, _ := New(Config{BaseURL: "http://127.0.0.1:1/agg/api/v1"})
	if _, err := s.Poll(context.Background(), "abc"); err == nil || !strings.Contains(err.Error(), "cursor") {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestDefaultClassOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ri   pcl.RunInfo
		want string
	}{
		{pcl.RunInfo{Era: "Run2025C", Sequence: "GLOBAL-RUN", FillType: "PROTONS"}, "Collisions25"},
		{pcl.RunInfo{Era: "Run2024G", Sequence: "GLOBAL-RUN", FillType: "PB"}, "HI24"},
		{pcl.RunInfo{Era: "Run2025C", Sequence: "GLOBAL-RUN", HLTKey: "/cdaq/cosmic/commissioning2025/v1.1.0/HLT/V3"}, "Cosmics25"},
		{pcl.RunInfo{Sequence: "PRIVATE-GLOBAL-TOTEMCTPPS", Start: time.Date(2025, 5, 29, 0, 0, 0, 0, time.UTC)}, "Commissioning25"},
	} {
		if got := DefaultClassOf(tc.ri); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.ri, got, tc.want)
		}
	}
}

func FuzzDecodeRuns(f *testing.F) {
	if real, ok := fixtures.ReadIfPresent(f, "oms", "test_oms_runs.json"); ok {
		f.Add(real)
	}
	f.Add([]byte(`{"data": [{"id": "1", "attributes": {"run_number": 392671, "start_time": "2025-05-29T04:09:57Z", "end_time": null}}], "links": {"next": null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeRuns(data)
		if err != nil {
			return
		}
		for _, r := range p.Runs {
			if r.Number == 0 || r.Info.Start.IsZero() || (r.Info.Stop != nil && r.Info.Stop.Before(r.Info.Start)) {
				t.Fatalf("decoder let through %+v", r)
			}
		}
	})
}
