package agency

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// tagSyncSetting is the store setting that keeps the tags' synchronizations across restarts.
const tagSyncSetting = "tag-synchronizations"

// tagSyncs remembers each condition DB tag's TAG.SYNCHRONIZATION as the conddb spy last reported it on
// an IOV. A run's own observations name the synchronization of the tags it has IOVs in; a tag it has
// none in (its upload there failed, or has not landed yet) would otherwise count as gating PromptReco,
// and a failed upload to an hlt tag, which PromptReco never reads, would block the run. A deployment
// watches a few dozen tags: this stays small whatever the history.
type tagSyncs struct {
	write sync.Mutex // one note at a time, so that none undoes another's
	mu    sync.Mutex
	m     map[string]string // never changed in place: a reconcile may be reading an older one
}

// load reads the persisted synchronizations.
func (t *tagSyncs) load(ctx context.Context, st store.Store) error {
	v, ok, err := st.Setting(ctx, tagSyncSetting)
	if err != nil {
		return fmt.Errorf("agency: read tag synchronizations: %w", err)
	}
	m := map[string]string{}
	if ok {
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			// Only a cache of what the next IOVs say again: lose it rather than refuse to start.
			m = map[string]string{}
		}
	}
	t.mu.Lock()
	t.m = m
	t.mu.Unlock()
	return nil
}

// note learns the synchronizations a batch's IOVs name and persists them before they are used, as the
// FCSR is. It reports whether one changed (every open run may then read differently).
func (t *tagSyncs) note(ctx context.Context, st store.Store, obs []pcl.Observation) (bool, error) {
	t.write.Lock()
	defer t.write.Unlock()
	cur := t.snapshot()
	var next map[string]string
	for i := range obs {
		o := &obs[i]
		if o.Kind != pcl.KindIOV || o.Synchronization == "" || cur[o.Tag] == o.Synchronization {
			continue
		}
		if next == nil {
			next = maps.Clone(cur)
		}
		next[o.Tag] = o.Synchronization
	}
	if next == nil {
		return false, nil
	}
	b, err := json.Marshal(next)
	if err != nil {
		return false, err
	}
	if err := st.SetSetting(ctx, tagSyncSetting, string(b)); err != nil {
		return false, fmt.Errorf("agency: store tag synchronizations: %w", err)
	}
	t.mu.Lock()
	t.m = next
	t.mu.Unlock()
	return true, nil
}

// snapshot is the current map, for one reconcile; nobody writes into it.
func (t *tagSyncs) snapshot() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m
}
