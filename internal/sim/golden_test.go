package sim

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/fixtures"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy/dqm"
	"github.com/cms-pcl/spyagency/internal/spy/dropbox"
	"github.com/cms-pcl/spyagency/internal/spy/harvest"
	"github.com/cms-pcl/spyagency/internal/spy/oms"
	"github.com/cms-pcl/spyagency/internal/spy/tier0"
)

// The OMS reply decodes with the OMS spy's decoder, pages by links.next, and its attributes give the
// class the config package's default rules derive.
func TestOMSRunsDecodeAndClassify(t *testing.T) {
	t.Parallel()
	s, srv := sharedWorld(t)
	truth := s.Runs()
	classes, err := config.NewClassifier(config.DefaultClassRules())
	if err != nil {
		t.Fatal(err)
	}
	next := srv.URL + "/agg/api/v1/runs?filter[run_number][GE]=1&sort=-run_number&page[limit]=7&page[offset]=0"
	var got []oms.Run
	for pages := 0; next != ""; pages++ {
		if pages > 100 {
			t.Fatal("links.next does not end")
		}
		code, _, body := get(t, next)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, code, body)
		}
		p, err := oms.DecodeRuns(body)
		if err != nil {
			t.Fatalf("DecodeRuns: %v", err)
		}
		if p.Total != len(truth) {
			t.Fatalf("totalResourceCount %d, want %d", p.Total, len(truth))
		}
		got = append(got, p.Runs...)
		next = p.Next
	}
	if len(got) != len(truth) {
		t.Fatalf("paged %d runs, want %d", len(got), len(truth))
	}
	for i, r := range got {
		want := truth[len(truth)-1-i] // sort=-run_number
		if r.Number != want.Number {
			t.Fatalf("run %d: got %d (order)", i, r.Number)
		}
		if c := classes.ClassOf(r.Info); c != want.Class {
			t.Errorf("run %d: default class rules give %q, the world made a %q run", r.Number, c, want.Class)
		}
		if r.Info.Stop == nil && !want.Stop.After(s.Now()) {
			t.Errorf("run %d: end_time null after its stop", r.Number)
		}
		if r.Info.BField != 3.8 || r.Info.Era != "Run2026A" {
			t.Errorf("run %d: b_field %v era %q", r.Number, r.Info.BField, r.Info.Era)
		}
	}
	// The OMS spy itself reads the simulator from an empty cursor.
	sp, err := oms.New(oms.Config{BaseURL: srv.URL + "/agg/api/v1", FirstRun: truth[0].Number, Clock: clock.NewFake(s.Now())})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sp.Poll(context.Background(), "")
	if err != nil {
		t.Fatalf("OMS spy poll: %v", err)
	}
	if len(res.Observations) != len(truth) {
		t.Fatalf("OMS spy saw %d runs, want %d", len(res.Observations), len(truth))
	}
	for _, bad := range []string{"filter[start_time][GE]=2026", "page[limit]=0", "sort=fill_number", "filter[run_number][XX]=1"} {
		if code, _, _ := get(t, srv.URL+"/agg/api/v1/runs?"+bad); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, code)
		}
	}
}

// Tier-0 replies use the chunked envelope, carry Expires five minutes after Date, and decode with the
// Tier-0 spy's decoders into what the world did.
func TestTier0ServiceDecodes(t *testing.T) {
	t.Parallel()
	s, srv := sharedWorld(t)
	base := srv.URL + "/t0wmadatasvc/prod/"
	code, h, body := get(t, base+"hello")
	if code != 200 || string(body) != "{\"result\": [\n \"world\"\n]}\n" {
		t.Fatalf("hello: %d %q", code, body)
	}
	date, _ := http.ParseTime(h.Get("Date"))
	exp, _ := http.ParseTime(h.Get("Expires"))
	if exp.Sub(date) != 5*time.Minute || !date.Equal(s.Now().Truncate(time.Second)) {
		t.Errorf("Date %v Expires %v, want the simulated now and 5 min later", date, exp)
	}
	_, _, body = get(t, base+"firstconditionsaferun")
	fcsr, ok, err := tier0.DecodeFCSR(body)
	if err != nil || !ok || fcsr != s.FCSR() {
		t.Fatalf("FCSR %d %v %v, want %d", fcsr, ok, err, s.FCSR())
	}
	var sawRelease, sawDone bool
	for _, r := range stoppedRuns(s) {
		rs := strconv.FormatUint(uint64(r.Number), 10)
		_, _, body := get(t, base+"express_config?run="+rs)
		rows, err := tier0.DecodeExpressConfig(body)
		if err != nil {
			t.Fatalf("express_config %s: %v", rs, err)
		}
		if len(rows) != len(r.Streams) {
			t.Fatalf("run %s: %d express_config rows, want %d streams", rs, len(rows), len(r.Streams))
		}
		cat := pcl.DefaultCatalogue()
		for _, row := range rows {
			for _, w := range cat.Workflows() {
				if w.RunsIn(row.Stream) && !slices.Contains(row.Producers(), w.Producer) {
					t.Errorf("run %s stream %s: alca_skim lacks %s", rs, row.Stream, w.Producer)
				}
			}
		}
		for _, st := range r.Streams {
			_, _, body := get(t, base+"run_stream_done?"+url.Values{"run": {rs}, "stream": {st.Name}}.Encode())
			done, ok, err := tier0.DecodeFlag(body)
			if err != nil || !ok || done != !st.Done.IsZero() {
				t.Errorf("run %s stream %s: done %v %v %v, truth %v", rs, st.Name, done, ok, err, st.Done)
			}
			sawDone = sawDone || done
		}
		_, _, body = get(t, base+"reco_config?run="+rs)
		reco, err := tier0.DecodeRecoConfig(body)
		if err != nil {
			t.Fatalf("reco_config %s: %v", rs, err)
		}
		if released := !r.Released.IsZero(); released != (len(reco) == len(Datasets(r.Family))) || !released && len(reco) > 0 {
			t.Errorf("run %s: %d reco_config rows, released %v", rs, len(reco), r.Released)
		}
		sawRelease = sawRelease || len(reco) > 0
	}
	if !sawRelease || !sawDone {
		t.Errorf("three days show no release (%v) or no stream done (%v)", sawRelease, sawDone)
	}
	for _, bad := range []string{"run_stream_done?run=1&stream=Express", "run_stream_done?run=400001", "express_config?stream=a-b"} {
		if code, _, _ := get(t, base+bad); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, code)
		}
	}
	if code, _, _ := get(t, base+"no_such_endpoint"); code != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d, want 404", code)
	}
}

// The upload log decodes with the dropBox spy's decoder, pages by next, and holds one record per
// processed upload and destination tag.
func TestUploadLogDecodesAndPages(t *testing.T) {
	t.Parallel()
	s, srv := sharedWorld(t)
	want := 0
	for _, r := range s.Runs() {
		for _, w := range r.Workflows {
			for _, f := range w.Files {
				for _, tg := range f.Tags {
					if tg.Status != "" {
						want++
					}
				}
			}
		}
	}
	seen := map[string]bool{}
	since := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("the log does not end")
		}
		u := srv.URL + dropbox.LogPath + "?limit=100"
		if since != "" {
			u += "&since=" + url.QueryEscape(since)
		}
		code, _, body := get(t, u)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", u, code, body)
		}
		p, err := dropbox.DecodeLog(body)
		if err != nil {
			t.Fatalf("DecodeLog: %v", err)
		}
		if !p.Sorted {
			t.Fatal("records not in logged order")
		}
		for _, r := range p.Records {
			if _, err := pcl.ParseHarvestName(r.FileName); err != nil {
				t.Errorf("record file name: %v", err)
			}
			seen[r.FileHash+"/"+r.DestinationTag] = true
		}
		if p.Next == nil {
			break
		}
		since = p.Next.Format(time.RFC3339Nano)
	}
	if want == 0 || len(seen) != want {
		t.Fatalf("log holds %d distinct records, the world processed %d", len(seen), want)
	}
}

// DQM samples and archive folders decode with the DQM spy's decoders, and the folder's quality is the
// one the world drew.
func TestDQMDecodes(t *testing.T) {
	t.Parallel()
	s, srv := sharedWorld(t)
	checked := 0
	for _, r := range stoppedRuns(s)[:6] {
		rs := strconv.FormatUint(uint64(r.Number), 10)
		q := url.Values{"match": {"PromptCalibProd.*ALCAPROMPT"}, "run": {"^" + rs + "$"}}
		_, _, body := get(t, srv.URL+"/dqm/offline/data/json/samples?"+q.Encode())
		// The spy's exact ^run$ is answered by a lookup; the same question as another pattern goes
		// through the regexp on every run, and must get the same reply.
		q2 := url.Values{"match": {"PromptCalibProd.*ALCAPROMPT"}, "run": {"^(" + rs + ")$"}}
		if _, _, body2 := get(t, srv.URL+"/dqm/offline/data/json/samples?"+q2.Encode()); string(body2) != string(body) {
			t.Errorf("samples of %s: ^%s$ and ^(%s)$ differ:\n%s\n%s", rs, rs, rs, body, body2)
		}
		samples, err := dqm.DecodeSamples(body)
		if err != nil {
			t.Fatalf("samples of %s: %v", rs, err)
		}
		for _, w := range r.Workflows {
			if w.Quality == nil {
				continue
			}
			ds := s.dqmDataset(r.Start, w)
			if !slices.Contains(samples, dqm.Sample{Run: r.Number, Dataset: ds}) {
				t.Errorf("run %s: sample %s not listed", rs, ds)
				continue
			}
			_, _, body := get(t, srv.URL+"/dqm/offline/data/json/archive/"+rs+ds+"/"+dqm.DefaultFolder(w.Workflow))
			if _, _, again := get(t, srv.URL+"/dqm/offline/data/json/archive/"+rs+ds+"/"+dqm.DefaultFolder(w.Workflow)); string(again) != string(body) {
				t.Errorf("archive %s %s: the remembered reply differs from the first", rs, w.Workflow)
			}
			f, err := dqm.DecodeArchive(body)
			if err != nil {
				t.Fatalf("archive %s %s: %v", rs, w.Workflow, err)
			}
			worst, all30 := pcl.QualityGood, true
			for _, st := range w.Quality {
				all30 = all30 && st == pcl.StatusInsufficient
				if q := pcl.QualityFromStatus(st); q != pcl.QualityGood {
					worst = q
				}
			}
			if all30 { // the world's no-payload: every test says insufficient statistics
				worst = pcl.QualityInsufficient
			}
			if got := dqm.QualityOf(f); got != worst {
				t.Errorf("run %s %s: quality %s, world drew %v", rs, w.Workflow, got, w.Quality)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no DQM sample checked")
	}
	if code, _, _ := get(t, srv.URL+"/dqm/offline/data/json/archive/1/A/B/C/D"); code != http.StatusNotFound {
		t.Errorf("unknown archive path: %d, want 404", code)
	}
}

// Every harvest file has a real name, its .txt parses as dropBox metadata, its .db is a CondDB v2 file
// holding the payload's IOV, and the harvest spy reads them all.
func TestHarvestAreaParses(t *testing.T) {
	t.Parallel()
	s, _ := sharedWorld(t)
	ctx := context.Background()
	files := map[string]FileTruth{}
	for _, r := range s.Runs() {
		for _, w := range r.Workflows {
			for _, f := range w.Files {
				files[f.Name] = f
			}
		}
	}
	if len(files) == 0 {
		t.Fatal("no harvest file in three days")
	}
	found := 0
	err := filepath.WalkDir(s.HarvestDir(), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n, err := pcl.ParseHarvestName(d.Name())
		if err != nil {
			t.Errorf("harvest area: %v", err)
			return nil
		}
		f, ok := files[n.DB()]
		if !ok {
			t.Errorf("%s: not a file of the world", d.Name())
			return nil
		}
		if filepath.Base(filepath.Dir(p)) != strconv.Itoa(DefaultStart.Year()) {
			t.Errorf("%s: not in a <year> folder", p)
		}
		switch n.Ext {
		case pcl.HarvestMetadata:
			body, _ := os.ReadFile(p)
			md, err := harvest.ParseMetadata(body)
			if err != nil || md.Prod == nil || md.Prep == nil || md.Prod.InputTag != n.InputTag || md.Prod.Since != nil {
				t.Errorf("%s: metadata %+v %v", d.Name(), md, err)
			}
		case pcl.HarvestDB:
			found++
			db, err := conddbv2.OpenFile(ctx, p, conddbv2.Options{Immutable: true})
			if err != nil {
				t.Errorf("%s: %v", d.Name(), err)
				return nil
			}
			defer db.Close()
			iovs, err := db.IOVs(ctx, n.InputTag, time.Time{}, 0)
			if err != nil || len(iovs) != 1 || iovs[0].Payload != f.PayloadHash || iovs[0].Since != f.Since {
				t.Errorf("%s: IOVs %+v %v, want %s at %d", d.Name(), iovs, err, f.PayloadHash, f.Since)
			}
			info, _ := os.Stat(p)
			if !info.ModTime().Equal(f.Harvested) {
				t.Errorf("%s: mtime %v, harvested at %v", d.Name(), info.ModTime(), f.Harvested)
			}
		case pcl.HarvestUploaded:
			if f.Uploaded.IsZero() {
				t.Errorf("%s: marker of a file not uploaded", d.Name())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != len(files) {
		t.Errorf("%d .db files on disk, the world harvested %d", found, len(files))
	}
	sp, err := harvest.New(harvest.Config{Dir: s.HarvestDir(), Clock: clock.NewFake(s.Now())})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sp.Poll(ctx, "")
	if err != nil {
		t.Fatalf("harvest spy: %v", err)
	}
	n := 0
	for _, o := range res.Observations {
		if o.Kind == pcl.KindHarvestFile {
			n++
		}
	}
	if n != len(files) {
		t.Errorf("harvest spy saw %d files, want %d", n, len(files))
	}
}

// The condition DB has the CMSSW-written fixture's tables and columns, a tag per destination tag with
// its time type and synchronization, and exactly the IOVs the dropBox appended.
func TestCondDBSchemaAndContent(t *testing.T) {
	t.Parallel()
	s, _ := sharedWorld(t)
	ctx := context.Background()
	fix, err := conddbv2.OpenFile(ctx, fixtures.Path(t, "conddb", "AlCaRecoHLTpaths8e29_1e31_v11_hlt_All.db"), conddbv2.Options{Immutable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fix.Close()
	db, err := conddbv2.Open(ctx, "sqlite:"+s.CondDBPath())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ft, _ := fix.Tables(ctx)
	st, _ := db.Tables(ctx)
	if !slices.Equal(ft, st) {
		t.Fatalf("tables %v, fixture %v", st, ft)
	}
	for _, tb := range ft {
		fc, _ := fix.Columns(ctx, tb)
		sc, _ := db.Columns(ctx, tb)
		if !slices.Equal(fc, sc) {
			t.Errorf("table %s: columns %v, fixture %v", tb, sc, fc)
		}
	}
	cat := pcl.DefaultCatalogue()
	for _, tag := range cat.DestinationTags() {
		info, err := db.Tag(ctx, tag)
		tt, _ := cat.TimeTypeOf(tag)
		if err != nil || info.TimeType != tt || info.Synchronization != Synchronization(tag) {
			t.Errorf("tag %s: %+v %v", tag, info, err)
		}
	}
	want := map[string][]string{}
	for _, r := range s.Runs() {
		for _, w := range r.Workflows {
			for _, f := range w.Files {
				for _, tg := range f.Tags {
					if !tg.InDB.IsZero() {
						want[tg.Tag] = append(want[tg.Tag], strconv.FormatUint(tg.Since, 10)+"/"+f.PayloadHash)
					}
				}
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("nothing appended in three days")
	}
	for tag, iovs := range want {
		rows, err := db.IOVs(ctx, tag, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, strconv.FormatUint(r.Since, 10)+"/"+r.Payload)
		}
		slices.Sort(got)
		slices.Sort(iovs)
		if !slices.Equal(got, iovs) {
			t.Errorf("tag %s: IOVs %v, dropBox appended %v", tag, got, iovs)
		}
	}
}

// ServeConfig points every source at the simulator with the configuration's own keys.
func TestServeConfig(t *testing.T) {
	t.Parallel()
	s, _ := sharedWorld(t)
	out := string(s.ServeConfig("http://127.0.0.1:9000/"))
	cfg, err := config.Parse("sim.yaml", []byte(out))
	if err != nil {
		t.Fatalf("the config package refuses the serve config: %v\n%s", err, out)
	}
	if got := []string{cfg.Sources.OMS.URL, cfg.Sources.Tier0.URL, cfg.Sources.Harvest.Dir, cfg.Sources.CondDB.DSN}; got[0] == "" || got[1] == "" || got[2] == "" || got[3] == "" {
		t.Errorf("sources not all set: %v", got)
	}
	for _, want := range []string{"url: http://127.0.0.1:9000/agg/api/v1", "url: http://127.0.0.1:9000/t0wmadatasvc/prod",
		"url: http://127.0.0.1:9000/dqm/offline", "url: http://127.0.0.1:9000\n", "dir: " + s.HarvestDir(), "dsn: sqlite:" + s.CondDBPath()} {
		if !strings.Contains(out, want) {
			t.Errorf("serve config lacks %q:\n%s", want, out)
		}
	}
}
