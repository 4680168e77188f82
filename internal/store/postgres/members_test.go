package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
)

// TestMembers: a heartbeat lists its replica until it runs out, a renewal extends it, Leave removes it
// at once, and heartbeats an hour stale are forgotten.
func TestMembers(t *testing.T) {
	t.Parallel()
	s := openSchema(t, Options{})
	ctx := context.Background()
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ttl := 10 * time.Second
	members := func(at time.Time, want ...string) {
		t.Helper()
		got, err := s.Members(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("members at +%s: %v, want %v", at.Sub(t0), got, want)
		}
	}
	members(t0)
	for _, id := range []string{"b", "a", "c"} {
		if err := s.Heartbeat(ctx, id, ttl, t0); err != nil {
			t.Fatal(err)
		}
	}
	members(t0, "a", "b", "c")
	if err := s.Heartbeat(ctx, "a", ttl, t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	members(t0.Add(12*time.Second), "a") // b and c ran out at +10 s, a renewed to +15 s
	if err := s.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	members(t0.Add(time.Second), "b", "c")
	if err := s.Heartbeat(ctx, "d", ttl, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM members").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d heartbeat rows after b and c were an hour stale, want 1 (d's)", rows)
	}
	if err := s.Heartbeat(ctx, " ", ttl, t0); apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("no replica named: %v", err)
	}
	if err := s.Heartbeat(ctx, "a", 0, t0); apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("no TTL: %v", err)
	}
}
