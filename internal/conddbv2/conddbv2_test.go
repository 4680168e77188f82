package conddbv2

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/fixtures"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

const fixtureTag = "AlCaRecoHLTpaths8e29_1e31_v11_hlt"

// fixture finds the CMSSW-written CondDB file in ../shared/fixtures, next to the module root.
func fixture(t *testing.T) string {
	t.Helper()
	return fixtures.Path(t, "conddb", fixtureTag+"_All.db")
}

func TestReadFixture(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(ctx, "sqlite:"+fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	tags, err := db.Tags(ctx)
	if err != nil || !slices.Equal(tags, []string{fixtureTag}) {
		t.Fatalf("Tags = %v, %v; want the one fixture tag", tags, err)
	}
	tag, err := db.Tag(ctx, fixtureTag)
	if err != nil {
		t.Fatal(err)
	}
	wantIns := time.Date(2019, 10, 24, 13, 52, 14, 24101000, time.UTC)
	if tag.TimeType != pcl.TimeRun || tag.ObjectType != "AlCaRecoTriggerBits" || tag.Synchronization != "any" ||
		tag.EndOfValidity != pcl.Infinity || !tag.Inserted.Equal(wantIns) || !tag.Modified.Equal(wantIns) ||
		!strings.HasPrefix(tag.Description, "Created copying tag") {
		t.Errorf("Tag = %+v", tag)
	}

	iovs, err := db.IOVs(ctx, fixtureTag, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(iovs) != 107 {
		t.Fatalf("got %d IOVs, want 107", len(iovs))
	}
	if iovs[0].Since != 1 || iovs[len(iovs)-1].Since != 327051 {
		t.Errorf("sinces run %d..%d, want 1..327051", iovs[0].Since, iovs[len(iovs)-1].Since)
	}
	for i := 1; i < len(iovs); i++ {
		if iovs[i].Inserted.Before(iovs[i-1].Inserted) {
			t.Fatalf("IOV %d inserted %v before IOV %d (%v): not ordered by INSERTION_TIME", i, iovs[i].Inserted, i-1, iovs[i-1].Inserted)
		}
	}
	if iovs[0].Inserted.Location() != time.UTC || iovs[0].Inserted.Nanosecond()%1000 != 0 {
		t.Errorf("inserted %v: want UTC with microseconds", iovs[0].Inserted)
	}
	if len(iovs[0].Payload) != 40 {
		t.Errorf("payload hash %q is not 40 hex", iovs[0].Payload)
	}

	// Resuming at the 50th row's time returns it and everything after it, nothing before.
	from := iovs[49].Inserted
	rest, err := db.IOVs(ctx, fixtureTag, from, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 107-49 || rest[0] != iovs[49] {
		t.Errorf("IOVs from %v: %d rows starting %+v, want %d starting %+v", from, len(rest), rest[0], 107-49, iovs[49])
	}
	page, err := db.IOVs(ctx, fixtureTag, time.Time{}, 10)
	if err != nil || len(page) != 10 || page[9] != iovs[9] {
		t.Errorf("limit 10: %d rows, %v", len(page), err)
	}

	payloads, err := db.Payloads(ctx)
	if err != nil || len(payloads) != 99 {
		t.Fatalf("Payloads: %d, %v; want 99", len(payloads), err)
	}
	tables, err := db.Tables(ctx)
	if err != nil || !slices.Contains(tables, "coral_sqlite_fk") || !slices.Contains(tables, "TAG_LOG") {
		t.Errorf("Tables = %v, %v", tables, err)
	}

	// The winning IOV just below the last since is the second to last by since.
	snap := Snapshot(iovs, time.Time{})
	prev, ok, err := db.PreviousIOV(ctx, fixtureTag, 327051, time.Time{})
	if err != nil || !ok || prev != snap[len(snap)-2] {
		t.Errorf("PreviousIOV(327051) = %+v %v %v, want %+v", prev, ok, err, snap[len(snap)-2])
	}
	if _, ok, err := db.PreviousIOV(ctx, fixtureTag, 1, time.Time{}); ok || err != nil {
		t.Errorf("PreviousIOV(1) found something (%v)", err)
	}
	if _, err := db.Tag(ctx, "NoSuchTag"); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("unknown tag: %v, want not_found", err)
	}
	// The batched read says the same of each tag, leaves out the unknown, and is asked twice (the
	// second time from its prepared statement).
	for range 2 {
		infos, err := db.TagInfos(ctx, []string{"NoSuchTag", fixtureTag})
		if err != nil || len(infos) != 1 || infos[fixtureTag] != tag {
			t.Errorf("TagInfos = %+v, %v; want only %+v", infos, err, tag)
		}
	}
	if infos, err := db.TagInfos(ctx, nil); err != nil || len(infos) != 0 {
		t.Errorf("TagInfos(nil) = %v, %v", infos, err)
	}
	counts, err := db.IOVCounts(ctx, []string{fixtureTag, "NoSuchTag"})
	if c := counts[fixtureTag]; err != nil || len(counts) != 1 || c.Rows != 107 || !strings.HasPrefix(c.Newest, "20") {
		t.Errorf("IOVCounts = %+v, %v; want the fixture's 107 rows and its newest insertion", counts, err)
	}
}

func TestCreateMatchesFixtureSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ref, err := Open(ctx, "sqlite:"+fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	path := filepath.Join(t.TempDir(), "new.db")
	w, err := Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err := Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()

	wantTables, _ := ref.Tables(ctx)
	gotTables, err := got.Tables(ctx)
	if err != nil || !slices.Equal(gotTables, wantTables) {
		t.Fatalf("tables %v, want %v (%v)", gotTables, wantTables, err)
	}
	for _, table := range wantTables {
		want, _ := ref.Columns(ctx, table)
		have, err := got.Columns(ctx, table)
		if err != nil || !slices.Equal(have, want) {
			t.Errorf("table %s: columns %+v, want %+v (%v)", table, have, want, err)
		}
	}
	if _, err := Create(ctx, path); err == nil {
		t.Error("Create over an existing file succeeded")
	}
}

// newDB makes a CondDB file with one tag and returns its writer and reader.
func newDB(t *testing.T, tt pcl.TimeType) (*Writer, *DB, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "Run1@In@x.db")
	w, err := Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.InsertTag(ctx, TagInfo{Name: "T", TimeType: tt, ObjectType: "Obj", Synchronization: "pcl"}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{hash('a'), hash('b'), hash('c')} {
		if err := w.InsertPayload(ctx, Payload{Hash: h, ObjectType: "Obj", Version: "dummy"}); err != nil {
			t.Fatal(err)
		}
	}
	db, err := Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return w, db, path
}

func hash(c byte) string { return strings.Repeat(string(c), 40) }

func TestSnapshotRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, db, _ := newDB(t, pcl.TimeRun)
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	rows := []IOV{
		{Tag: "T", Since: 100, Payload: hash('a'), Inserted: t0},
		{Tag: "T", Since: 200, Payload: hash('b'), Inserted: t0.Add(time.Hour)},
		{Tag: "T", Since: 100, Payload: hash('c'), Inserted: t0.Add(2 * time.Hour)}, // re-upload of since 100
		{Tag: "T", Since: 300, Payload: hash('c'), Inserted: t0.Add(2 * time.Hour)}, // same time as the row above
	}
	for _, r := range rows {
		if err := w.AppendIOV(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.IOVs(ctx, "T", time.Time{}, 0)
	if err != nil || len(all) != 4 {
		t.Fatalf("IOVs = %d, %v", len(all), err)
	}
	if all[2].Since != 100 || all[3].Since != 300 {
		t.Errorf("equal insertion times not ordered by since: %+v", all[2:])
	}
	now := Snapshot(all, time.Time{})
	if len(now) != 3 || now[0].Payload != hash('c') {
		t.Errorf("snapshot now = %+v; since 100 should carry the newest payload c", now)
	}
	before := Snapshot(all, t0.Add(90*time.Minute))
	if len(before) != 2 || before[0].Payload != hash('a') || before[1].Since != 200 {
		t.Errorf("snapshot at +90m = %+v; want a@100, b@200", before)
	}
	if v, ok := ValidAt(now, 250); !ok || v.Since != 200 {
		t.Errorf("ValidAt(250) = %+v %v", v, ok)
	}
	if _, ok := ValidAt(now, 50); ok {
		t.Error("ValidAt(50) found an IOV below the first since")
	}

	prev, ok, err := db.PreviousIOV(ctx, "T", 200, time.Time{})
	if err != nil || !ok || prev.Payload != hash('c') {
		t.Errorf("PreviousIOV(200) now = %+v %v %v; want c", prev, ok, err)
	}
	prev, ok, err = db.PreviousIOV(ctx, "T", 200, t0.Add(time.Hour))
	if err != nil || !ok || prev.Payload != hash('a') {
		t.Errorf("PreviousIOV(200) at +1h = %+v %v %v; want a", prev, ok, err)
	}
	if err := w.AppendIOV(ctx, IOV{Tag: "Nope", Since: 1, Payload: hash('a')}); err == nil {
		t.Error("AppendIOV to a missing tag succeeded")
	}
}

func TestLumiAndLargeSinces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, db, _ := newDB(t, pcl.TimeLumi)
	big := uint64(1)<<63 + 5 // stored as a negative integer by SQLite
	for i, s := range []uint64{1406876667346979, big} {
		if err := w.AppendIOV(ctx, IOV{Tag: "T", Since: s, Payload: hash('a'), Inserted: time.Unix(int64(1e9+i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	tag, err := db.Tag(ctx, "T")
	if err != nil || tag.TimeType != pcl.TimeLumi || tag.EndOfValidity != pcl.Infinity {
		t.Fatalf("Tag = %+v, %v", tag, err)
	}
	iovs, err := db.IOVs(ctx, "T", time.Time{}, 0)
	if err != nil || len(iovs) != 2 {
		t.Fatalf("IOVs = %+v, %v", iovs, err)
	}
	run, lumi := pcl.UnpackLumi(iovs[0].Since)
	if run != 327564 || lumi != 35 || pcl.RunOfSince(tag.TimeType, iovs[0].Since) != 327564 {
		t.Errorf("since %d unpacks to run %d lumi %d, want 327564/35", iovs[0].Since, run, lumi)
	}
	if iovs[1].Since != big {
		t.Errorf("since above 2^63 read back as %d, want %d", iovs[1].Since, big)
	}
	prev, ok, err := db.PreviousIOV(ctx, "T", big, time.Time{})
	if err != nil || !ok || prev.Since != 1406876667346979 {
		t.Errorf("PreviousIOV(big) = %+v %v %v", prev, ok, err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 500)), 0o644)
	other := filepath.Join(dir, "other.db")
	odb, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := odb.Exec(`CREATE TABLE "TAG" ("NAME" TEXT)`); err != nil {
		t.Fatal(err)
	}
	odb.Close()
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o644)

	cases := []struct {
		dsn, want string
	}{
		{"sqlite:" + filepath.Join(dir, "missing.db"), "missing.db"},
		{"sqlite:" + garbage, "garbage.db"},
		{"sqlite:" + other, "table TAG has no column TIME_TYPE"},
		{"sqlite:" + empty, "no table TAG"},
		{"sqlite:" + dir, "directory"},
		{"sqlite:", "no file path"},
		{"mysql://x", "want sqlite:PATH"},
		{"postgres://u:secret@localhost/db", "no PostgreSQL driver"},
	}
	for _, c := range cases {
		db, err := Open(ctx, c.dsn)
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", c.dsn)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want it to mention %q", c.dsn, err, c.want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) leaks the password: %v", c.dsn, err)
		}
	}
	if _, err := Open(ctx, "sqlite:"+filepath.Join(dir, "missing.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error %v does not wrap fs.ErrNotExist", err)
	}
}

func TestTruncatedFixture(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data, err := os.ReadFile(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{100, 4096, len(data) / 2} {
		path := filepath.Join(t.TempDir(), "cut.db")
		os.WriteFile(path, data[:n], 0o644)
		db, err := OpenFile(ctx, path, Options{Immutable: true})
		if err != nil {
			continue // refused at open: fine
		}
		iovs, err := db.IOVs(ctx, fixtureTag, time.Time{}, 0)
		db.Close()
		if err == nil && len(iovs) == 107 {
			t.Errorf("file cut at %d bytes still read as whole", n)
		}
		if err != nil && !strings.Contains(err.Error(), "cut.db") {
			t.Errorf("error %v does not name the file", err)
		}
	}
}

func TestScanners(t *testing.T) {
	t.Parallel()
	sinces := []struct {
		in   any
		want uint64
		ok   bool
	}{
		{int64(-1), pcl.Infinity, true}, {int64(42), 42, true}, {"18446744073709551615", pcl.Infinity, true},
		{[]byte("7"), 7, true}, {"-1", pcl.Infinity, true}, {float64(3), 3, true},
		{float64(-2), 0, false}, {"x", 0, false}, {nil, 0, false}, {true, 0, false},
	}
	for _, c := range sinces {
		var s sinceValue
		err := s.Scan(c.in)
		if (err == nil) != c.ok || (c.ok && uint64(s) != c.want) {
			t.Errorf("since %v: %d, %v", c.in, s, err)
		}
	}
	want := time.Date(2019, 10, 24, 13, 52, 14, 24101000, time.UTC)
	for _, in := range []any{"2019-10-24 13:52:14.024101", []byte("2019-10-24T13:52:14.024101"),
		"2019-10-24 15:52:14.024101+02:00", want.In(time.FixedZone("x", 3600))} {
		var tv timeValue
		if err := tv.Scan(in); err != nil || !time.Time(tv).Equal(want) || time.Time(tv).Location() != time.UTC {
			t.Errorf("time %v: %v, %v", in, time.Time(tv), err)
		}
	}
	for _, in := range []any{"yesterday", nil, 12} {
		var tv timeValue
		if err := tv.Scan(in); err == nil {
			t.Errorf("time %v accepted", in)
		}
	}
	if got := FormatTime(want); got != "2019-10-24 13:52:14.024101" {
		t.Errorf("FormatTime = %q", got)
	}
}

func TestDialectRewrite(t *testing.T) {
	t.Parallel()
	q := `SELECT "A" FROM "IOV" WHERE "X" = ? AND "Y" >= ?`
	if got := SQLite().Rewrite(q); got != q {
		t.Errorf("sqlite rewrote %q", got)
	}
	if got := Postgres().Rewrite(q); got != `SELECT "A" FROM "IOV" WHERE "X" = $1 AND "Y" >= $2` {
		t.Errorf("postgres: %q", got)
	}
	d := &Dialect{IdentQuote: '`'}
	if got := d.Rewrite(`"A"`); got != "`A`" {
		t.Errorf("quote: %q", got)
	}
}
