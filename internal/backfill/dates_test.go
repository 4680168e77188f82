package backfill

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/spy/oms"
)

func TestParseWindow(t *testing.T) {
	t.Parallel()
	d := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	for _, c := range []struct {
		since, until string
		want         oms.StartWindow
	}{
		{"2026-05-01", "2026-05-08", oms.StartWindow{Since: d("2026-05-01T00:00:00Z"), Until: d("2026-05-09T00:00:00Z"), Exclusive: true}},
		{"2026-05-01", "2026-05-01", oms.StartWindow{Since: d("2026-05-01T00:00:00Z"), Until: d("2026-05-02T00:00:00Z"), Exclusive: true}},
		{"2026-05-01T06:00:00+02:00", "2026-05-01T06:00:00Z", oms.StartWindow{Since: d("2026-05-01T04:00:00Z"), Until: d("2026-05-01T06:00:00Z")}},
		{"2026-05-01T06:00:00Z", "2026-05-01T06:00:00Z", oms.StartWindow{Since: d("2026-05-01T06:00:00Z"), Until: d("2026-05-01T06:00:00Z")}},
		{"2026-05-01T06:00:00Z", "2026-05-01", oms.StartWindow{Since: d("2026-05-01T06:00:00Z"), Until: d("2026-05-02T00:00:00Z"), Exclusive: true}},
	} {
		w, err := ParseWindow(c.since, c.until)
		if err != nil || !w.Since.Equal(c.want.Since) || !w.Until.Equal(c.want.Until) || w.Exclusive != c.want.Exclusive ||
			w.Since.Location() != time.UTC {
			t.Errorf("ParseWindow(%q, %q) = %v, %v; want %v", c.since, c.until, w, err, c.want)
		}
	}
	for _, c := range [][2]string{{"", "2026-05-01"}, {"2026-05-01", ""}, {"2026-05-02", "2026-05-01"},
		{"2026-05-02T00:00:01Z", "2026-05-02T00:00:00Z"}, {"2026-5-1", "2026-05-02"}, {"2026-05-01", "tomorrow"}} {
		if _, err := ParseWindow(c[0], c[1]); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("ParseWindow(%q, %q): %v, want Invalid", c[0], c[1], err)
		}
	}
}

func TestResolveNeedsOMS(t *testing.T) {
	t.Parallel()
	w, _ := ParseWindow("2026-05-01", "2026-05-02")
	_, _, _, err := Resolve(context.Background(), &config.Config{}, w, 0, nil)
	if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(err.Error(), "sources.oms is not enabled") {
		t.Errorf("Resolve without OMS: %v", err)
	}
}
