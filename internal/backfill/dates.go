package backfill

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy/oms"
)

// dateOnly is the layout of a date without a time.
const dateOnly = "2006-01-02"

// ParseWindow reads a date range as the command line gives it (--since, --until), in UTC: each is an
// RFC 3339 time or a date. A date as --since is that day's midnight; a date as --until takes the whole
// day, up to the next midnight excluded; an RFC 3339 --until is included. The window is of run start
// times.
func ParseWindow(since, until string) (oms.StartWindow, error) {
	var w oms.StartWindow
	if since == "" || until == "" {
		return w, apperr.Errorf(apperr.Invalid, "a date range needs both --since and --until")
	}
	parse := func(flag, v string) (time.Time, bool, error) {
		if t, err := time.Parse(dateOnly, v); err == nil {
			return t, true, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return time.Time{}, false, apperr.Errorf(apperr.Invalid, "%s %q is neither a date (2026-05-01) nor an RFC 3339 time (2026-05-01T06:00:00Z)", flag, v)
		}
		return t.UTC(), false, nil
	}
	s, _, err := parse("--since", since)
	if err != nil {
		return w, err
	}
	u, day, err := parse("--until", until)
	if err != nil {
		return w, err
	}
	if day {
		u = u.AddDate(0, 0, 1)
	}
	w = oms.StartWindow{Since: s, Until: u, Exclusive: day}
	if u.Before(s) || day && !s.Before(u) {
		return oms.StartWindow{}, apperr.Errorf(apperr.Invalid, "--since %s is after --until %s", since, until)
	}
	return w, nil
}

// Resolve asks the configured OMS which runs started in the window: the range's first and last runs,
// and how many runs OMS counted in it (-1 when it did not say). first = last = 0 when none did. It uses
// the OMS source's URL and credentials, rate-limited as a backfill's reads are.
func Resolve(ctx context.Context, cfg *config.Config, w oms.StartWindow, rate float64, log *slog.Logger) (first, last uint32, count int, err error) {
	sc, _ := cfg.Sources.ByName(pcl.SourceOMS)
	if !sc.Enabled {
		return 0, 0, 0, apperr.Errorf(apperr.Invalid, "a date range is resolved to runs by OMS, and sources.oms is not enabled; give --from and --to instead")
	}
	if rate <= 0 {
		rate = DefaultRate
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sp, err := app.NewSpy(pcl.SourceOMS, sc, app.SpyParams{Logger: log,
		HTTP: &http.Client{Transport: limitedTransport{lim: newLimiter(rate), next: http.DefaultTransport}}})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("source oms: %w", err)
	}
	o, ok := sp.(*oms.Spy)
	if !ok {
		return 0, 0, 0, fmt.Errorf("source oms: the spy is a %T", sp)
	}
	return o.RunRange(ctx, w)
}
