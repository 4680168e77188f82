package agency

import "context"

// Reload reads again what the agency remembers between passes (the FCSR, the tags' synchronizations,
// the open runs, the sources they wait for and their hints) from the store, as New does. A replica
// that becomes the leader calls it before its first pass: while it followed, another replica stored
// runs, facts and decisions this one never saw. Runs stored since New are learnt, runs closed
// elsewhere leave the open runs; nothing is written.
func (a *Agency) Reload(ctx context.Context) error {
	a.reconcileMu.Lock() // no pass reads the index half reloaded
	defer a.reconcileMu.Unlock()
	return a.load(ctx)
}
