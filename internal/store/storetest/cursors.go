package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// testCursors: a cursor is stored with its view time, each spy's apart, and overwritten whole: a poll
// that keeps its cursor still moves its view, and a cursor without a view reads back without one.
func testCursors(t *testing.T, s store.Store) {
	ctx := context.Background()
	v, err := s.Cursor(ctx, "conddb")
	must(t, "missing cursor", err)
	if v != (store.Cursor{}) {
		t.Fatalf("missing cursor = %+v, want the zero cursor", v)
	}
	view := epoch().Add(123456 * time.Microsecond)
	must(t, "set", s.SetCursor(ctx, "conddb", store.Cursor{Value: "2025-06-14T09:40:00.123456Z", View: view}))
	must(t, "set other", s.SetCursor(ctx, "tier0", store.Cursor{Value: "392671"}))
	must(t, "overwrite", s.SetCursor(ctx, "conddb", store.Cursor{Value: "2025-06-14T10:02:17.5Z", View: view.Add(time.Minute)}))
	must(t, "same value, later view", s.SetCursor(ctx, "harvest", store.Cursor{Value: "a:1", View: view}))
	must(t, "same value, later view", s.SetCursor(ctx, "harvest", store.Cursor{Value: "a:1", View: view.Add(2 * time.Minute)}))
	for name, want := range map[string]store.Cursor{
		"conddb":  {Value: "2025-06-14T10:02:17.5Z", View: view.Add(time.Minute)},
		"tier0":   {Value: "392671"},
		"harvest": {Value: "a:1", View: view.Add(2 * time.Minute)},
		"dqm":     {},
	} {
		got, err := s.Cursor(ctx, name)
		must(t, "cursor "+name, err)
		if got.Value != want.Value || !got.View.Equal(want.View) {
			t.Errorf("cursor %s = %+v, want %+v", name, got, want)
		}
	}
	wantCode(t, "empty name", s.SetCursor(ctx, "", store.Cursor{Value: "x"}), apperr.Invalid)
	wantCode(t, "view out of range", s.SetCursor(ctx, "oms", store.Cursor{Value: "x", View: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}), apperr.Invalid)
	if got, err := s.Cursor(ctx, "oms"); err != nil || got != (store.Cursor{}) {
		t.Errorf("a refused cursor was stored: %+v (err %v)", got, err)
	}
}
