package agency

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// fcsrSetting is the store setting that keeps the first condition-safe run across restarts.
const fcsrSetting = "fcsr"

// fcsr is the newest first condition-safe run Tier-0 reported. It is persisted before it is used, so
// that a restart never reconciles with an older one.
type fcsr struct {
	// write lets one note at a time persist, so that an older FCSR is never written over a newer one
	// by a spy whose batch was checked first and stored last. A channel rather than a mutex, so that a
	// test in a synctest bubble sees a note waiting for it as blocked.
	write chan struct{}
	mu    sync.Mutex
	run   uint32
}

func newFCSR() *fcsr { return &fcsr{write: make(chan struct{}, 1)} }

// load reads the persisted FCSR.
func (f *fcsr) load(ctx context.Context, st store.Store) error {
	v, ok, err := st.Setting(ctx, fcsrSetting)
	if err != nil {
		return fmt.Errorf("agency: read FCSR: %w", err)
	}
	if ok {
		n, _ := strconv.ParseUint(v, 10, 32)
		f.mu.Lock()
		f.run = uint32(n)
		f.mu.Unlock()
	}
	return nil
}

// note persists the newest FCSR of a batch when it is newer than the one known, and reports whether it
// was (every open run may then be at risk). It judges the whole batch, not only its new facts: if
// persisting fails, the spy re-sends the batch, whose FCSR is then a stored fact that is not new.
func (f *fcsr) note(ctx context.Context, st store.Store, obs []pcl.Observation) (bool, error) {
	var newest uint32
	for i := range obs {
		if obs[i].Kind == pcl.KindFCSR {
			newest = max(newest, obs[i].Run)
		}
	}
	if newest == 0 {
		return false, nil
	}
	f.write <- struct{}{}
	defer func() { <-f.write }()
	if newest <= f.get() {
		return false, nil
	}
	if err := st.SetSetting(ctx, fcsrSetting, strconv.FormatUint(uint64(newest), 10)); err != nil {
		return false, fmt.Errorf("agency: store FCSR: %w", err)
	}
	f.mu.Lock()
	f.run = newest
	f.mu.Unlock()
	return true, nil
}

// get is the FCSR known now.
func (f *fcsr) get() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.run
}
