package sim

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// probingAgency answers first_unready_run and checks, while it is asked, that the simulated services
// can still serve: the world's lock must be free. It counts the questions.
type probingAgency struct {
	t     *testing.T
	sim   atomic.Pointer[Sim]
	asked atomic.Int32
}

func (p *probingAgency) FirstUnreadyRun(context.Context) (uint32, error) {
	p.asked.Add(1)
	if s := p.sim.Load(); s != nil {
		if !s.mu.TryLock() {
			p.t.Error("the world is locked while Tier-0 waits for the agency: every simulated service waits too")
			return 0, nil
		}
		s.mu.Unlock()
		// And a spy's request is served meanwhile.
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/agg/api/v1/runs?page[limit]=1", nil))
		if rec.Code != 200 {
			p.t.Errorf("OMS answered %d while the agency was asked", rec.Code)
		}
	}
	return 0, nil
}

// TestTier0AsksTheAgencyOutsideTheWorldLock: the simulated Tier-0 asks the agency once per advance of
// the world, without holding the world's lock, so the services keep answering the agency's spies.
func TestTier0AsksTheAgencyOutsideTheWorldLock(t *testing.T) {
	t.Parallel()
	ag := &probingAgency{t: t}
	s := newSim(t, Config{Seed: 5, Tier0Mode: Tier0Agency, Agency: ag})
	ag.sim.Store(s)
	if err := s.AdvanceTo(DefaultStart.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := ag.asked.Load(); n != 1 {
		t.Errorf("asked %d times for one advance of 120 feeder cycles, want 1", n)
	}
}

// holdingAgency says no run may go.
type holdingAgency struct{}

func (holdingAgency) FirstUnreadyRun(context.Context) (uint32, error) { return 0, nil }

// TestTier0Backstop: with the backstop, Tier-0 keeps its own fixed delay beside the agency's answer
// (docs/tier0-integration.md), so an agency that holds every run delays none past stop + 47.5 h; without
// it, the agency's answer alone decides.
func TestTier0Backstop(t *testing.T) {
	t.Parallel()
	end := DefaultStart.Add(60 * time.Hour)
	for _, backstop := range []bool{false, true} {
		s := newSim(t, Config{Seed: 5, Tier0Mode: Tier0Agency, Agency: holdingAgency{}, Tier0Backstop: backstop})
		for now := DefaultStart; now.Before(end); now = now.Add(10 * time.Minute) {
			if err := s.AdvanceTo(now); err != nil {
				t.Fatal(err)
			}
		}
		rels := s.Releases()
		if !backstop {
			if len(rels) != 0 {
				t.Errorf("without the backstop %d runs were released while the agency held them all", len(rels))
			}
			continue
		}
		if len(rels) == 0 {
			t.Fatal("with the backstop no run was released in 60 h")
		}
		for _, r := range rels {
			truth, _ := s.Truth(r.Run)
			lock := truth.Stop.Add(DefaultParams().RecoDelay - DefaultParams().RecoLockDelay)
			if r.ByAgency || r.Locked.Before(lock) || r.Locked.After(lock.Add(DefaultParams().FeederInterval)) {
				t.Errorf("run %d locked %s by-agency=%v, want at its fixed lock %s by the backstop", r.Run, r.Locked, r.ByAgency, lock)
			}
		}
	}
}
