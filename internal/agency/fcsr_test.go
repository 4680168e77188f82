package agency

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// settings is a store of settings alone; writing the value in gate waits until the test opens it.
type settings struct {
	store.Store // nil: the FCSR uses nothing else
	mu          sync.Mutex
	kv          map[string]string
	gate        string
	reached     chan struct{}
	open        chan struct{}
}

func (s *settings) Setting(_ context.Context, key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[key]
	return v, ok, nil
}

func (s *settings) SetSetting(_ context.Context, key, value string) error {
	if value == s.gate {
		close(s.reached)
		<-s.open
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[key] = value
	return nil
}

func fcsrObs(run uint32) []pcl.Observation {
	return []pcl.Observation{{Source: pcl.SourceTier0, Kind: pcl.KindFCSR, Run: run, At: t0}}
}

// TestFCSRNeverGoesBack: two spies report FCSRs at once; the batch with the older one was checked first
// and is slow to persist. The newer one must be what is persisted and known at the end.
func TestFCSRNeverGoesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &settings{kv: map[string]string{}, gate: "392690", reached: make(chan struct{}), open: make(chan struct{})}
		f := newFCSR()
		ctx := t.Context()
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := f.note(ctx, st, fcsrObs(392690)); err != nil {
				t.Error(err)
			}
		})
		<-st.reached // the older FCSR is being persisted
		wg.Go(func() {
			if _, err := f.note(ctx, st, fcsrObs(392695)); err != nil {
				t.Error(err)
			}
		})
		synctest.Wait() // the newer one has been noted, or waits for the older one's write
		close(st.open)
		wg.Wait()
		if v, _, _ := st.Setting(ctx, fcsrSetting); v != "392695" || f.get() != 392695 {
			t.Errorf("persisted FCSR %s, known %d; want the newer 392695 in both", v, f.get())
		}
		if raised, err := f.note(ctx, st, fcsrObs(392680)); err != nil || raised {
			t.Errorf("an older FCSR after the newer: raised %v (%v)", raised, err)
		}
	})
}
