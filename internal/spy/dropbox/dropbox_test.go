package dropbox

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

var t0 = time.Date(2026, 2, 27, 8, 0, 0, 0, time.UTC)

// fakeLog serves the feed of docs/upload-log.md from a list of records.
type fakeLog struct {
	mu      sync.Mutex
	records []map[string]any
	calls   int
}

func rec(hash byte, file, input, tag, status string, logged time.Time) map[string]any {
	return map[string]any{"fileHash": sha(hash), "fileName": file, "inputTag": input,
		"destinationTag": tag, "status": status, "info": "info " + status, "uploaded": logged.Add(-time.Minute).Format(time.RFC3339),
		"logged": logged.Format(time.RFC3339Nano), "extraField": 1}
}

// sha is a made-up file hash, 40 hex digits, distinct per byte.
func sha(b byte) string {
	sum := sha1.Sum([]byte{b})
	return hex.EncodeToString(sum[:])
}

func (f *fakeLog) add(r ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, r...)
	slices.SortStableFunc(f.records, func(a, b map[string]any) int {
		return strings.Compare(a["logged"].(string)+a["fileHash"].(string)+a["destinationTag"].(string),
			b["logged"].(string)+b["fileHash"].(string)+b["destinationTag"].(string))
	})
}

func (f *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if r.URL.Path != LogPath {
		http.NotFound(w, r)
		return
	}
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		var err error
		if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			http.Error(w, "bad since", http.StatusBadRequest)
			return
		}
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	out := []map[string]any{}
	var next any
	for _, rec := range f.records {
		logged, _ := time.Parse(time.RFC3339Nano, rec["logged"].(string))
		if logged.Before(since) {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1]["logged"]
			break
		}
		out = append(out, rec)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"records": out, "next": next})
}

func newSpy(t *testing.T, url string, pageSize int) *Spy {
	t.Helper()
	s, err := New(Config{URL: url, PageSize: pageSize, Clock: clock.NewFake(t0.Add(time.Hour)),
		Client: httpx.New(httpx.Options{Timeout: 5 * time.Second, MaxBytes: 1 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	gainsFile = "Run390001@SiStripApvGain_pcl@11111111-aaaa.db"
	laFile    = "Run390002@SiStripLA_pcl@22222222-bbbb.db"
)

func TestIncrementalRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := &fakeLog{}
	tie := t0.Add(5 * time.Minute)
	log.add(
		rec('a', gainsFile, "SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", "ok", tie),
		rec('a', gainsFile, "SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", "too-late", tie),
		rec('b', laFile, "SiStripLA_pcl", "SiStripLorentzAngle_byPCL_v0_prompt", "fail", tie),
		rec('c', "my_private_upload.db", "Mine", "Mine_v1", "ok", tie),                          // not a harvest file
		rec('d', "Run390003@Unknown_pcl@33.db", "Unknown_pcl", "U", "ok", tie.Add(time.Second)), // not in the catalogue
		rec('e', "Run390004@SiPixelLA_pcl@44.db", "SiPixelLA_pcl", "SiPixelLorentzAngle_byPCL_v0_prompt", "skip", tie.Add(2*time.Second)),
	)
	srv := httptest.NewServer(log)
	defer srv.Close()
	s := newSpy(t, srv.URL+"/", 2)

	res, err := s.Poll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Observations) != 4 {
		t.Fatalf("%d observations, want 4 PCL records: %+v", len(res.Observations), res.Observations)
	}
	got := map[string]pcl.Observation{}
	for _, o := range res.Observations {
		if err := o.Validate(); err != nil {
			t.Error(err)
		}
		got[o.Tag] = o
	}
	o := got["SiStripApvGain_PCL_v0_prompt"]
	if o.Status != pcl.UploadTooLate || o.Run != 390001 || o.Workflow != "SiStripGains" || o.File != gainsFile ||
		o.FileHash != sha('a') || !o.At.Equal(tie) || o.Info != "info too-late" || o.Source != pcl.SourceDropbox {
		t.Errorf("too-late record = %+v", o)
	}
	if got["SiStripLorentzAngle_byPCL_v0_prompt"].Status != pcl.UploadFail || got["SiPixelLorentzAngle_byPCL_v0_prompt"].Run != 390004 {
		t.Errorf("records = %+v", got)
	}

	again, err := s.Poll(ctx, res.Cursor)
	if err != nil || len(again.Observations) != 0 {
		t.Fatalf("second poll: %d, %v", len(again.Observations), err)
	}
	// New records at the very instant of the cursor, and later ones.
	last := tie.Add(2 * time.Second)
	log.add(rec('f', "Run390005@SiPixelLA_pcl@55.db", "SiPixelLA_pcl", "SiPixelLorentzAngle_byPCL_v0_prompt", "ok", last),
		rec('g', "Run390006@SiPixelLA_pcl@66.db", "SiPixelLA_pcl", "SiPixelLorentzAngle_byPCL_v0_prompt", "ok", last.Add(time.Millisecond)))
	third, err := s.Poll(ctx, again.Cursor)
	if err != nil || len(third.Observations) != 2 {
		t.Fatalf("after two new records: %d, %v", len(third.Observations), err)
	}
	if third.Observations[0].Run != 390005 || third.Observations[1].Run != 390006 {
		t.Errorf("new records = %+v", third.Observations)
	}
}

// TestManyTies puts more records on one instant than a page holds.
func TestManyTies(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	for i := range 9 {
		log.add(rec(byte('a'+i), fmt.Sprintf("Run39000%d@SiPixelLA_pcl@u.db", i+1), "SiPixelLA_pcl", "T", "ok", t0))
	}
	srv := httptest.NewServer(log)
	defer srv.Close()
	s := newSpy(t, srv.URL, 2)
	s.cfg.MaxPages = 2
	cursor, runs := "", map[uint32]int{}
	var partial []bool
	for range 6 {
		res, err := s.Poll(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Observations {
			runs[o.Run]++
		}
		cursor = res.Cursor
		partial = append(partial, res.Partial)
		if !res.View.Equal(t0.Add(time.Hour)) {
			t.Errorf("view %s, want the clock before the first page", res.View)
		}
	}
	// A poll cut by MaxPages read only part of the log: it is no view of the log.
	if !partial[0] || partial[len(partial)-1] {
		t.Errorf("partial polls %v: the first must be partial, the last (all read) not", partial)
	}
	if len(runs) != 9 {
		t.Errorf("saw %d of 9 records sharing an instant", len(runs))
	}
	for r, n := range runs {
		if n != 1 {
			t.Errorf("run %d seen %d times", r, n)
		}
	}
}

func serve(body string, status int, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

func TestBadReplies(t *testing.T) {
	t.Parallel()
	good := rec('a', gainsFile, "SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", "ok", t0)
	mk := func(recs ...map[string]any) string {
		b, _ := json.Marshal(map[string]any{"records": recs, "next": nil})
		return string(b)
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	later := rec('b', laFile, "SiStripLA_pcl", "SiStripLorentzAngle_byPCL_v0_prompt", "ok", t0.Add(time.Minute))
	partial, _ := json.Marshal(map[string]any{"records": []any{later, good}, "next": t0.Format(time.RFC3339)})
	const js = "application/json"
	cases := []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"5xx", serve(`{"error":"db down"}`, 503, js), "503"},
		{"html", serve(`<html><title>CERN Single Sign-On</title></html>`, 200, "text/html"), "Single Sign-On"},
		{"truncated", serve(mk(good)[:60], 200, js), "truncated"},
		{"records object", serve(`{"records":{}}`, 200, js), "records"},
		{"no records", serve(`{"next":null}`, 200, js), "records missing"},
		{"unknown status", serve(mk(with("status", "pending")), 200, js), `record 1 (file ` + gainsFile + `, tag SiStripApvGain_PCL_v0_hlt): unknown status "pending"`},
		{"missing tag", serve(mk(with("destinationTag", nil)), 200, js), "destinationTag missing"},
		{"bad hash", serve(mk(with("fileHash", "xyz")), 200, js), "not a SHA-1"},
		{"bad time", serve(mk(with("logged", "yesterday")), 200, js), "field logged"},
		{"number status", serve(mk(with("status", 3)), 200, js), "status"},
		{"bad next", serve(`{"records":[],"next":"soon"}`, 200, js), "field next"},
		{"unordered partial", serve(string(partial), 200, js), "out of logged order"},
		{"huge", serve(`{"records":[`+strings.Repeat(`{"info":"xxxxxxxx"},`, 1<<16)+`]}`, 200, js), "too"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(c.h)
			defer srv.Close()
			res, err := newSpy(t, srv.URL, 10).Poll(context.Background(), "")
			if err == nil {
				t.Fatalf("accepted, %d observations", len(res.Observations))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if len(res.Observations) != 0 {
				t.Error("observations returned with an error")
			}
		})
	}
}

func TestTolerated(t *testing.T) {
	t.Parallel()
	a := rec('a', gainsFile, "SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", "ok", t0.Add(time.Minute))
	b := rec('b', laFile, "SiStripLA_pcl", "SiStripLorentzAngle_byPCL_v0_prompt", "ok", t0)
	// Complete reply, out of order and with a duplicate: sorted, counted once.
	body, _ := json.Marshal(map[string]any{"records": []any{a, b, a}, "next": nil})
	srv := httptest.NewServer(serve(string(body), 200, "application/json"))
	defer srv.Close()
	s := newSpy(t, srv.URL, 10)
	res, err := s.Poll(context.Background(), "")
	if err != nil || len(res.Observations) != 2 || res.Observations[0].Run != 390002 {
		t.Fatalf("unordered complete reply: %+v, %v", res.Observations, err)
	}
	// The server ignores since and sends everything again: nothing is repeated.
	res, err = s.Poll(context.Background(), res.Cursor)
	if err != nil || len(res.Observations) != 0 {
		t.Errorf("replayed reply: %d observations, %v", len(res.Observations), err)
	}
	// A damaged cursor starts over rather than wedging the spy.
	if res, err := s.Poll(context.Background(), "{"); err != nil || len(res.Observations) != 2 {
		t.Errorf("damaged cursor: %d, %v", len(res.Observations), err)
	}
}

func TestDownAndHanging(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if _, err := newSpy(t, url, 10).Poll(context.Background(), ""); err == nil || !httpx.Retryable(err) {
		t.Errorf("source down: %v (retryable %v)", err, httpx.Retryable(err))
	}
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := newSpy(t, hang.URL, 10).Poll(ctx, ""); err == nil {
		t.Error("hanging source: no error")
	}
	for _, u := range []string{"", "ftp://x", "not a url", "http://"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

func FuzzDecodeLog(f *testing.F) {
	r := rec('a', gainsFile, "SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_hlt", "ok", t0)
	b, _ := json.Marshal(map[string]any{"records": []any{r}, "next": nil})
	f.Add(b)
	b, _ = json.Marshal(map[string]any{"records": []any{r, r}, "next": t0.Format(time.RFC3339Nano)})
	f.Add(b)
	f.Add([]byte(`{"records":[]}`))
	f.Add([]byte(`<html>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeLog(data)
		if err != nil {
			return
		}
		for i, r := range p.Records {
			if !r.Status.Valid() || len(r.FileHash) != 40 || r.FileName == "" || r.DestinationTag == "" || r.Logged.IsZero() {
				t.Fatalf("accepted a bad record: %+v", r)
			}
			if i > 0 && compare(p.Records[i-1], r) > 0 {
				t.Fatal("records not sorted")
			}
		}
	})
}
