package oms

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// RunRange speaks OMS's filter syntax exactly (the first link of the real 2025 reply is such a query)
// and refuses a reply whose runs are outside the window: an OMS that ignored the filter.
func TestRunRangeQueryAndIgnoredFilter(t *testing.T) {
	t.Parallel()
	body := omsFixture(t)
	var (
		mu   sync.Mutex
		asks []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		mu.Lock()
		asks = append(asks, req.URL.RawQuery)
		mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		rw.Write(body) // the 15 runs of 2025-05-29, whatever was asked
	}))
	defer srv.Close()
	sp, err := New(Config{BaseURL: srv.URL + "/agg/api/v1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	day := time.Date(2025, 5, 29, 0, 0, 0, 0, time.UTC)
	first, last, n, err := sp.RunRange(ctx, StartWindow{Since: day, Until: day.AddDate(0, 0, 1), Exclusive: true})
	if err != nil || first != 392671 || last != 392702 || n != 15 {
		t.Errorf("RunRange of 2025-05-29: %d-%d (%d runs), %v; want 392671-392702 (15)", first, last, n, err)
	}
	mu.Lock()
	got := append([]string(nil), asks...)
	mu.Unlock()
	want := []string{
		"filter%5Bstart_time%5D%5BGE%5D=2025-05-29T00%3A00%3A00Z&filter%5Bstart_time%5D%5BLT%5D=2025-05-30T00%3A00%3A00Z&page%5Blimit%5D=1&page%5Boffset%5D=0&sort=run_number",
		"filter%5Bstart_time%5D%5BGE%5D=2025-05-29T00%3A00%3A00Z&filter%5Bstart_time%5D%5BLT%5D=2025-05-30T00%3A00%3A00Z&page%5Blimit%5D=1&page%5Boffset%5D=0&sort=-run_number",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("queries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A window that excludes some of those runs: the reply has runs outside it.
	_, _, _, err = sp.RunRange(ctx, StartWindow{Since: day.Add(12 * time.Hour), Until: day.AddDate(0, 0, 1)})
	if err == nil || !strings.Contains(err.Error(), "filter was not applied") {
		t.Errorf("reply outside the window: %v", err)
	}
}
