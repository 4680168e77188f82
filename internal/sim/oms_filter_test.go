package sim

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/spy/oms"
)

// The runs endpoint filters on start_time as OMS does: filter[start_time][OP] or, as OMS's own links
// write it, filter[runs][start_time][OP], with RFC 3339 times; the OMS spy's RunRange reads a window's
// first and last runs from it.
func TestOMSStartTimeFilter(t *testing.T) {
	t.Parallel()
	s, srv := sharedWorld(t)
	truth := s.Runs()
	if len(truth) < 6 {
		t.Fatalf("the shared world has %d runs", len(truth))
	}
	// A window from the second run's start to just before the fifth's.
	since, until := truth[1].Start.Truncate(time.Second), truth[4].Start.Truncate(time.Second)
	var want []uint32
	for _, r := range truth {
		if st := r.Start.Truncate(time.Second); !st.Before(since) && st.Before(until) {
			want = append(want, r.Number)
		}
	}
	for _, form := range []string{"filter[start_time]", "filter[runs][start_time]"} {
		q := url.Values{}
		q.Set(form+"[GE]", since.Format(time.RFC3339))
		q.Set(form+"[LT]", until.Format(time.RFC3339))
		q.Set("sort", "run_number")
		q.Set("page[limit]", "100")
		code, _, body := get(t, srv.URL+"/agg/api/v1/runs?"+q.Encode())
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", form, code, body)
		}
		p, err := oms.DecodeRuns(body)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint32
		for _, r := range p.Runs {
			got = append(got, r.Number)
		}
		if !equalRuns(got, want) || p.Total != len(want) {
			t.Errorf("%s: runs %v (total %d), want %v", form, got, p.Total, want)
		}
	}
	for _, bad := range []string{"filter[start_time][GE]=yesterday", "filter[start_time][ABOUT]=2026-05-04T00:00:00Z",
		"filter[fill][GE]=1", "filter[runs]=1"} {
		code, _, body := get(t, srv.URL+"/agg/api/v1/runs?"+bad)
		if code != http.StatusBadRequest || !strings.Contains(string(body), "filter") {
			t.Errorf("%s: %d %s, want 400 naming the filter", bad, code, body)
		}
	}

	sp, err := oms.New(oms.Config{BaseURL: srv.URL + "/agg/api/v1", Clock: clock.NewFake(s.Now())})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, last, n, err := sp.RunRange(ctx, oms.StartWindow{Since: since, Until: until, Exclusive: true})
	if err != nil || first != want[0] || last != want[len(want)-1] || n != len(want) {
		t.Errorf("RunRange [since, until): %d-%d (%d runs), %v; want %d-%d (%d)", first, last, n, err, want[0], want[len(want)-1], len(want))
	}
	// Inclusive: a run starting at exactly until is in.
	first, last, _, err = sp.RunRange(ctx, oms.StartWindow{Since: since, Until: until})
	if err != nil || first != want[0] || last != truth[4].Number {
		t.Errorf("RunRange [since, until]: %d-%d, %v; want %d-%d", first, last, err, want[0], truth[4].Number)
	}
	// Before the world: nothing.
	early := DefaultStart.Add(-48 * time.Hour)
	first, last, n, err = sp.RunRange(ctx, oms.StartWindow{Since: early, Until: early.Add(time.Hour)})
	if err != nil || first != 0 || last != 0 || n != 0 {
		t.Errorf("RunRange before the world: %d-%d (%d), %v; want none", first, last, n, err)
	}
	if _, _, _, err := sp.RunRange(ctx, oms.StartWindow{Since: until, Until: since}); err == nil {
		t.Error("RunRange of an inverted window: no error")
	}
}

func equalRuns(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
