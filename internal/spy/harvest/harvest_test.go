package harvest

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/conddbv2"
	"github.com/cms-pcl/spyagency/internal/fixtures"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// tree builds a harvest area in a temp dir.
type tree struct {
	t    *testing.T
	root string
	md   map[string][]byte
}

func newTree(t *testing.T) *tree {
	root := t.TempDir()
	return &tree{t: t, root: root, md: metadataFixtures(t)}
}

// path gives a file's path under <root>/2026/.
func (tr *tree) path(name string) string {
	dir := filepath.Join(tr.root, "2026")
	os.MkdirAll(dir, 0o755)
	return filepath.Join(dir, name)
}

// db writes a CondDB file with one IOV of the input tag at since, its mtime set to mtime.
func (tr *tree) db(name, inputTag string, since uint64, payload string, mtime time.Time) string {
	tr.t.Helper()
	ctx := context.Background()
	p := tr.path(name)
	w, err := conddbv2.Create(ctx, p)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer w.Close()
	must := func(err error) {
		if err != nil {
			tr.t.Fatal(err)
		}
	}
	must(w.InsertTag(ctx, conddbv2.TagInfo{Name: inputTag, TimeType: pcl.TimeRun, ObjectType: "Obj", Synchronization: "any"}))
	must(w.InsertPayload(ctx, conddbv2.Payload{Hash: payload, ObjectType: "Obj", Version: "dummy"}))
	must(w.AppendIOV(ctx, conddbv2.IOV{Tag: inputTag, Since: since, Payload: payload, Inserted: mtime}))
	w.Close()
	must(os.Chtimes(p, mtime, mtime))
	return p
}

// txt writes a metadata file from the named fixtures, each as a "<key> <json>" line.
func (tr *tree) txt(name string, lines ...string) {
	tr.t.Helper()
	var b strings.Builder
	for _, l := range lines {
		key, fixture, _ := strings.Cut(l, " ")
		doc, ok := tr.md[fixture]
		if !ok {
			tr.t.Fatalf("no metadata fixture %s", fixture)
		}
		b.WriteString(key + " " + string(doc) + "\n")
	}
	tr.raw(name, b.String())
}

func (tr *tree) raw(name, content string) {
	tr.t.Helper()
	if err := os.WriteFile(tr.path(name), []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

func hash(c byte) string { return strings.Repeat(string(c), 40) }

func newSpy(t *testing.T, dir string, cat *pcl.Catalogue) (*Spy, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := New(Config{Dir: dir, Catalogue: cat, Clock: clock.NewFake(now),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

func byFile(obs []pcl.Observation) map[string]pcl.Observation {
	m := map[string]pcl.Observation{}
	for _, o := range obs {
		m[string(o.Kind)+" "+o.File] = o
	}
	return m
}

func TestPollHarvestArea(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTree(t)
	t1 := time.Date(2026, 2, 27, 8, 0, 0, 0, time.UTC)

	gains := "Run390001@SiStripApvGain_pcl@11111111-aaaa.db"
	tr.db(gains, "SiStripApvGain_pcl", 390001, hash('a'), t1)
	tr.txt(strings.TrimSuffix(gains, ".db")+".txt", "prodMetaData SiStripApvGainRcd_prod.json")
	tr.raw(strings.TrimSuffix(gains, ".db")+".txt.uploaded", "prodMetaData {}")

	// Only prep metadata (validation upload), marker says prep.
	bad := "Run390002@SiStripBadStrip_pcl@22222222-bbbb.db"
	tr.db(bad, "SiStripBadStrip_pcl", 390002, hash('b'), t1)
	tr.txt(strings.TrimSuffix(bad, ".db")+".txt", "prepMetaData SiStripBadStripRcd_prep.json")
	tr.raw(strings.TrimSuffix(bad, ".db")+".txt.uploaded", "prepMetaData {...}")

	// Both lines: prod wins.
	la := "Run390003@SiStripLA_pcl@33333333-cccc.db"
	tr.db(la, "SiStripLA_pcl", 390003, hash('c'), t1)
	tr.txt(strings.TrimSuffix(la, ".db")+".txt", "prepMetaData SiStripLorentzAngleRcd_prep.json", "prodMetaData SiStripLorentzAngleRcd_prod.json")

	// Still being written: no .txt yet.
	tr.db("Run390004@SiPixelLA_pcl@44444444-dddd.db", "SiPixelLA_pcl", 390004, hash('d'), t1)
	// Not harvest files.
	tr.raw("README", "hello")
	tr.raw("Run390005@SiPixelLA_pcl.db", "x")
	tr.raw("Run390005@SiPixelLA_pcl@u.root", "x")
	// An input tag the catalogue does not know.
	tr.db("Run390006@Unknown_pcl@66.db", "Unknown_pcl", 390006, hash('e'), t1)
	tr.raw("Run390006@Unknown_pcl@66.txt", `prodMetaData {"destinationTags":{"X":{}},"inputTag":"Unknown_pcl"}`)
	// Broken files.
	tr.raw("Run390007@SiPixelLA_pcl@77.db", "this is not SQLite")
	tr.txt("Run390007@SiPixelLA_pcl@77.txt", "prodMetaData SiPixelLorentzAngleRcd_prod.json")
	tr.db("Run390008@SiPixelLA_pcl@88.db", "SiPixelLA_pcl", 390008, hash('f'), t1)
	tr.raw("Run390008@SiPixelLA_pcl@88.txt", "garbage\n")
	tr.db("Run390009@SiPixelLA_pcl@99.db", "SiPixelLA_pcl", 390009, hash('f'), t1)
	tr.raw("Run390009@SiPixelLA_pcl@99.txt", "prepMetaData ")
	tr.db("Run390010@SiPixelLA_pcl@1010.db", "SiPixelLA_pcl", 390010, hash('f'), t1)
	tr.txt("Run390010@SiPixelLA_pcl@1010.txt", "prodMetaData SiStripApvGainRcd_prod.json") // input tag mismatch
	truncated, _ := os.ReadFile(tr.path(gains))
	tr.raw("Run390011@SiStripApvGain_pcl@1111.db", string(truncated[:len(truncated)/3]))
	tr.txt("Run390011@SiStripApvGain_pcl@1111.txt", "prodMetaData SiStripApvGainRcd_prod.json")

	s, logs := newSpy(t, tr.root, nil)
	res, err := s.Poll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := byFile(res.Observations)
	if len(got) != 5 {
		t.Errorf("%d observations, want 5 (3 pairs, 2 markers): %v", len(got), slices.Collect(mapKeys(got)))
	}
	o := got["harvest-file "+gains]
	if o.Run != 390001 || o.Workflow != "SiStripGains" || o.InputTag != "SiStripApvGain_pcl" || o.Prep ||
		!slices.Equal(o.Destinations, []string{"SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt"}) ||
		len(o.Payloads) != 1 || o.Payloads[0].Since != 390001 || o.Payloads[0].Payload != hash('a') ||
		!o.At.Equal(t1) || !o.Seen.Equal(now) {
		t.Errorf("gains pair = %+v", o)
	}
	if o := got["harvest-file "+bad]; !o.Prep || !slices.Equal(o.Destinations, []string{"SiStripBadChannel_PCL_prep_prompt", "SiStripBadChannel_PCL_v1_hlt"}) {
		t.Errorf("prep-only pair = %+v", o)
	}
	if o := got["harvest-file "+la]; o.Prep || !slices.Equal(o.Destinations, []string{"SiStripLorentzAngle_byPCL_v0_prompt"}) || o.Workflow != "SiStripLA" {
		t.Errorf("prep+prod pair = %+v", o)
	}
	if m, ok := got["upload-marker "+gains]; !ok || m.Prep || m.Run != 390001 || m.Workflow != "SiStripGains" {
		t.Errorf("prod marker = %+v", m)
	}
	if m := got["upload-marker "+bad]; !m.Prep {
		t.Errorf("prep marker = %+v", m)
	}
	for _, o := range res.Observations {
		if err := o.Validate(); err != nil {
			t.Error(err)
		}
	}

	problems := s.Problems()
	var names []string
	for _, p := range problems {
		names = append(names, p.File)
	}
	want := []string{"Run390007@SiPixelLA_pcl@77.db", "Run390008@SiPixelLA_pcl@88.db", "Run390009@SiPixelLA_pcl@99.db",
		"Run390010@SiPixelLA_pcl@1010.db", "Run390011@SiStripApvGain_pcl@1111.db"}
	if !slices.Equal(names, want) {
		t.Errorf("problems %v, want %v", names, want)
	}
	if s.Degraded() == nil {
		t.Error("Degraded is nil with unreadable files")
	}
	if !strings.Contains(logs.String(), "README") || !strings.Contains(logs.String(), "Unknown_pcl") {
		t.Errorf("ignored names and unknown tags are not logged:\n%s", logs)
	}

	// Acknowledged: nothing new. Not acknowledged: everything again.
	again, err := s.Poll(ctx, res.Cursor)
	if err != nil || len(again.Observations) != 0 {
		t.Fatalf("second poll: %d observations, %v", len(again.Observations), err)
	}
	redo, err := s.Poll(ctx, res.Cursor) // again.Cursor was not kept: nothing was sent in it anyway
	if err != nil || len(redo.Observations) != 0 {
		t.Fatalf("repeat poll: %d, %v", len(redo.Observations), err)
	}
	fresh, err := s.Poll(ctx, "")
	if err != nil || len(fresh.Observations) != 5 {
		t.Fatalf("poll with an unacknowledged cursor: %d observations, %v; want 5 again", len(fresh.Observations), err)
	}

	// An unchanged .db is not read again: garbage of the same size and mtime goes unnoticed.
	gp := tr.path(gains)
	st, _ := os.Stat(gp)
	os.WriteFile(gp, bytes.Repeat([]byte{'x'}, int(st.Size())), 0o644)
	os.Chtimes(gp, st.ModTime(), st.ModTime())
	// The pending .db gets its .txt; a broken one is repaired.
	tr.txt("Run390004@SiPixelLA_pcl@44444444-dddd.txt", "prodMetaData SiPixelLorentzAngleRcd_prod.json")
	tr.db("Run390007@SiPixelLA_pcl@77.db.new", "SiPixelLA_pcl", 390007, hash('7'), t1)
	os.Rename(tr.path("Run390007@SiPixelLA_pcl@77.db.new"), tr.path("Run390007@SiPixelLA_pcl@77.db"))
	next, err := s.Poll(ctx, fresh.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	got = byFile(next.Observations)
	if len(got) != 2 || got["harvest-file Run390004@SiPixelLA_pcl@44444444-dddd.db"].Run != 390004 ||
		got["harvest-file Run390007@SiPixelLA_pcl@77.db"].Payloads[0].Payload != hash('7') {
		t.Errorf("after completing and repairing: %v", slices.Collect(mapKeys(got)))
	}
	if len(s.Problems()) != 4 {
		t.Errorf("problems after repair: %+v", s.Problems())
	}
}

func mapKeys(m map[string]pcl.Observation) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestRealCondDBFileHarvested reads the CMSSW-written fixture as if AlcaHarvest had produced it.
func TestRealCondDBFileHarvested(t *testing.T) {
	t.Parallel()
	src := fixtures.Path(t, "conddb", "AlCaRecoHLTpaths8e29_1e31_v11_hlt_All.db")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTree(t)
	stem := "Run327051@AlCaRecoHLTpaths8e29_1e31_v11_hlt@0f0e0d0c-1234"
	tr.raw(stem+".db", string(data))
	tr.raw(stem+".txt", `prodMetaData {"destinationDatabase":"oracle://cms_orcon_prod/CMS_CONDITIONS","destinationTags":{"AlCaRecoHLTpaths_hlt":{}},"inputTag":"AlCaRecoHLTpaths8e29_1e31_v11_hlt","since":null,"userText":"t"}`)
	cat, err := pcl.NewCatalogue([]pcl.Workflow{{Name: "AlCaRecoBits", Producer: "P", Streams: []string{"Express"},
		Inputs: []pcl.Input{{Tag: "AlCaRecoHLTpaths8e29_1e31_v11_hlt", TimeType: pcl.TimeRun, Destinations: []string{"AlCaRecoHLTpaths_hlt"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSpy(t, tr.root, cat)
	res, err := s.Poll(context.Background(), "")
	if err != nil || len(res.Observations) != 1 {
		t.Fatalf("%d observations, %v; problems %+v", len(res.Observations), err, s.Problems())
	}
	o := res.Observations[0]
	if len(o.Payloads) != 107 || o.Payloads[0].Since != 1 || o.Payloads[106].Since != 327051 || o.Workflow != "AlCaRecoBits" {
		t.Errorf("harvested fixture: %d payloads, first %+v", len(o.Payloads), o.Payloads[0])
	}
}

func TestMissingArea(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := newSpy(t, filepath.Join(dir, "not-mounted"), nil)
	if _, err := s.Poll(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "not-mounted") || !httpx.Retryable(err) {
		t.Errorf("missing area: %v (retryable %v)", err, httpx.Retryable(err))
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	s, _ = newSpy(t, file, nil)
	if _, err := s.Poll(context.Background(), ""); err == nil {
		t.Error("a plain file accepted as the harvest area")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a directory succeeded")
	}
}

func TestWatchNotifies(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s, _ := newSpy(t, root, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, func() {
			select {
			case events <- struct{}{}:
			default:
			}
		})
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-events:
		case err := <-done:
			t.Fatalf("Watch ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification after %s", what)
		}
	}
	// The watch may start after the first write; keep writing until it is noticed.
	year := filepath.Join(root, "2026")
	deadline := time.Now().Add(10 * time.Second)
	for noticed := false; !noticed; {
		os.MkdirAll(year, 0o755)
		select {
		case <-events:
			noticed = true
		case <-time.After(50 * time.Millisecond):
			os.Remove(year)
			if time.Now().After(deadline) {
				t.Fatal("no notification for a new directory")
			}
		}
	}
	// Drain, then a file inside the new directory must be noticed too.
	for len(events) > 0 {
		<-events
	}
	os.WriteFile(filepath.Join(year, "Run1@T@u.txt"), []byte("x"), 0o644)
	wait("a file in a new subdirectory")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch returned %v after cancel", err)
	}
}

// writingClock is the spy's clock in TestViewBeforeTheWalk: each reading moves time on by a second, and
// the second reading (taken once the walk is over, to stamp the first file seen) writes a new harvest
// file, as AlcaHarvest would while the spy is busy reading .db files.
type writingClock struct {
	clock.Fake
	reads   int
	write   func()
	written time.Time
}

func (c *writingClock) Now() time.Time {
	c.reads++
	c.Fake.Advance(time.Second)
	t := c.Fake.Now()
	if c.reads == 2 {
		c.write()
		c.written = t
	}
	return t
}

// TestViewBeforeTheWalk: the poll's view is when the walk began, so that a file written after the
// listing passed it, while the poll went on, is neither in the poll nor counted absent after the view.
func TestViewBeforeTheWalk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTree(t)
	first := "Run390001@SiStripApvGain_pcl@11111111-aaaa.db"
	tr.db(first, "SiStripApvGain_pcl", 390001, hash('a'), now)
	tr.txt(strings.TrimSuffix(first, ".db")+".txt", "prodMetaData SiStripApvGainRcd_prod.json")
	late := "Run390001@SiPixelAli_pcl@33333333-cccc.db"
	clk := &writingClock{Fake: *clock.NewFake(now)}
	clk.write = func() {
		tr.db(late, "SiPixelAli_pcl", 390001, hash('c'), now)
		tr.txt(strings.TrimSuffix(late, ".db")+".txt", "prodMetaData SiPixelAliRcd_prod.json")
	}
	s, err := New(Config{Dir: tr.root, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Poll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if clk.written.IsZero() {
		t.Fatal("the late file was never written: the test did not run as planned")
	}
	if len(res.Observations) != 1 || res.Observations[0].File != first {
		t.Fatalf("observations %+v, want only the file that was there when the walk began", res.Observations)
	}
	if !res.View.Before(clk.written) {
		t.Errorf("view %s is not before the late file was written (%s): its absence would count", res.View, clk.written)
	}
	if !res.View.Equal(now.Add(time.Second)) {
		t.Errorf("view %s, want the clock's first reading %s, before the walk", res.View, now.Add(time.Second))
	}
	// The next poll sees the late file, with a view after it was written.
	res, err = s.Poll(ctx, res.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := byFile(res.Observations)["harvest-file "+late]; !ok || !res.View.After(clk.written) {
		t.Errorf("the next poll: %d observations, view %s", len(res.Observations), res.View)
	}
}
