package agency

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"sync"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// facts keeps in memory what the open runs' reconciles read: each open run's observations, the IOVs
// carrying the payloads they harvested, and the run's last stored state. A resync reconciles every open
// run; without it each of those reconciles would read and decode all of its run's facts from the store
// again, and the cost of a pass would grow with every fact an open run ever gathered.
//
// It is exact, not a guess: an entry is filled from the store on its first use, and from then on every
// write of that run's facts or state is applied to it by the writer, which is this agency (Ingest,
// Override, the reconcile itself): only the agency writes observations and run states. The exceptions
// come from outside this process and each forgets what it may have changed: a replica that begins
// leading reloads (Reload forgets everything: while it followed, the leader wrote), and an override
// recorded on another replica forgets its run (Forget, from the leader's watch of overrides; and a
// resync reads the open runs' overrides again, for one that watch missed). A compacted run is
// forgotten with the payload lists holding its IOVs. A failed write forgets what it touched (it may
// be stored all the same), so that the next reconcile reads what the store really holds.
//
// Only open runs have entries (a closed run's reconcile reads the store), and a resync drops the entries
// of runs that closed, so it holds open work only.
type facts struct {
	mu   sync.Mutex
	runs map[uint32]*runFacts
	iovs map[string]*factList // payload hash → the IOVs carrying it
}

// runFacts is one open run's entry.
type runFacts struct {
	obs factList
	// state is the run's stored state as last read or written; nil when not known (never read, or a
	// write failed).
	state *pcl.RunState
	// stateJSON is state encoded, which is how the reconcile compares a new state with it; nil until
	// the reconcile encoded it once.
	stateJSON []byte
	snap      snapshot
}

// factList is observations in the store's order (At, then key), each stored fact once.
type factList struct {
	obs  []pcl.Observation
	keys [][16]byte
	seqs map[int64]bool
	gen  uint64 // counts the facts added, so that a snapshot made of the list knows it changed
	// payload is the hash of an IOV list (f.iovs's key); "" for a run's list.
	payload string
}

func newFacts() *facts {
	return &facts{runs: map[uint32]*runFacts{}, iovs: map[string]*factList{}}
}

// add puts a stored observation in its place, unless it is there already (a fill that read the store
// after the fact was stored, then the writer's own add).
func (l *factList) add(o pcl.Observation) {
	if l.seqs == nil {
		l.seqs = map[int64]bool{}
	}
	if l.seqs[o.Seq] {
		return
	}
	l.seqs[o.Seq] = true
	l.gen++
	k := o.KeySum()
	// The first place whose fact sorts after o's.
	i := sort.Search(len(l.obs), func(i int) bool {
		if c := l.obs[i].At.Compare(o.At); c != 0 {
			return c > 0
		}
		return bytes.Compare(l.keys[i][:], k[:]) > 0
	})
	l.obs = slices.Insert(l.obs, i, o)
	l.keys = slices.Insert(l.keys, i, k)
}

// gather is Agency.gather for an open run: the run's observations and the IOVs carrying its harvested
// payloads, from the entries, filling what is missing from the store. The store is read with f.mu held,
// so that a fact stored meanwhile is either in what the store returns or added after (add skips a fact
// it holds already): never lost between the two.
func (f *facts) gather(ctx context.Context, st store.Store, run uint32) ([]pcl.Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.runs[run]
	if e == nil {
		obs, err := st.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}})
		if err != nil {
			return nil, err
		}
		e = &runFacts{}
		for _, o := range obs {
			e.obs.add(o)
		}
		f.runs[run] = e
	}
	if e.snap.valid(e, f) {
		return e.snap.obs, nil
	}
	hashes := harvestedHashes(e.obs.obs)
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	var missing []string
	for _, h := range hashes {
		if f.iovs[h] == nil {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		iovs, err := st.Observations(ctx, store.ObservationQuery{Kinds: []pcl.Kind{pcl.KindIOV}, Payloads: missing})
		if err != nil {
			return nil, err
		}
		for _, h := range missing {
			f.iovs[h] = &factList{payload: h}
		}
		for _, o := range iovs {
			if l := f.iovs[o.Payload]; l != nil {
				l.add(o)
			}
		}
	}
	// The IOVs as the store's payload query returns them: each once, in its order. An IOV carries one
	// payload, so the lists of distinct hashes never share one; merged, they only need sorting.
	type keyed struct {
		o *pcl.Observation
		k [16]byte
	}
	var merged []keyed
	lists := make([]*factList, len(hashes))
	gens := make([]uint64, len(hashes))
	for i, h := range hashes {
		l := f.iovs[h]
		lists[i], gens[i] = l, l.gen
		for j := range l.obs {
			merged = append(merged, keyed{&l.obs[j], l.keys[j]})
		}
	}
	if len(hashes) > 1 {
		slices.SortFunc(merged, func(a, b keyed) int {
			if c := a.o.At.Compare(b.o.At); c != 0 {
				return c
			}
			return bytes.Compare(a.k[:], b.k[:])
		})
	}
	out := make([]pcl.Observation, len(e.obs.obs), len(e.obs.obs)+len(merged))
	copy(out, e.obs.obs)
	for _, m := range merged {
		out = append(out, *m.o)
	}
	e.snap = snapshot{obs: out, gen: e.obs.gen, lists: lists, gens: gens}
	return out, nil
}

// snapshot is what gather last returned for a run, with what it was made of: it is returned again
// while none of its lists gained a fact. Its slice is never written again (a change makes a new one),
// so the reconciles given it may read it after gather returned; they never modify their observations.
type snapshot struct {
	obs   []pcl.Observation
	gen   uint64      // the run's list's generation it was made at
	lists []*factList // the IOV lists of its payloads
	gens  []uint64    // and their generations
}

// valid says whether the snapshot is still what gather would make for e. Called with f.mu held.
func (s *snapshot) valid(e *runFacts, f *facts) bool {
	if s.obs == nil || s.gen != e.obs.gen {
		return false
	}
	for i, l := range s.lists {
		if l.gen != s.gens[i] || f.iovs[l.payload] != l {
			return false
		}
	}
	return true
}

// harvestedHashes are the payload hashes a run's harvested files carry, in order, with repeats.
func harvestedHashes(obs []pcl.Observation) []string {
	var hashes []string
	for i := range obs {
		if obs[i].Kind == pcl.KindHarvestFile {
			for _, p := range obs[i].Payloads {
				hashes = append(hashes, p.Payload)
			}
		}
	}
	return hashes
}

// stored applies newly stored observations to the entries that hold their run or payload.
func (f *facts) stored(obs []pcl.Observation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range obs {
		if e := f.runs[o.Run]; e != nil {
			e.obs.add(o)
		}
		if o.Kind == pcl.KindIOV {
			if l := f.iovs[o.Payload]; l != nil {
				l.add(o)
			}
		}
	}
}

// state is an open run's last stored state, if its entry knows it, and its encoding if known.
func (f *facts) state(run uint32) (pcl.RunState, []byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.runs[run]; e != nil && e.state != nil {
		return *e.state, e.stateJSON, true
	}
	return pcl.RunState{}, nil, false
}

// setState records the state just read from or written to the store for a run that has an entry, with
// its encoding when the caller has it (nil otherwise).
func (f *facts) setState(rs pcl.RunState, encoded []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.runs[rs.Run]; e != nil {
		e.state, e.stateJSON = &rs, encoded
	}
}

// forget drops a run's entry: its facts or state may have been written by someone else.
func (f *facts) forget(run uint32) {
	f.mu.Lock()
	delete(f.runs, run)
	f.mu.Unlock()
}

// forgetAll drops a run's entry and the payload lists holding one of its IOVs (an IOV is filed under
// its since's run): a compaction removed them from the store, and payloads are content-addressed, so an
// open run's harvest may carry the hash an older run's IOV holds.
func (f *facts) forgetAll(run uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.runs, run)
	for h, l := range f.iovs {
		if slices.ContainsFunc(l.obs, func(o pcl.Observation) bool { return o.Run == run }) {
			delete(f.iovs, h)
		}
	}
}

// forgetBatch drops what a batch whose write failed may have changed: its runs' entries and its IOVs'
// payload lists (a snapshot made of a dropped list is not handed out again).
func (f *facts) forgetBatch(obs []pcl.Observation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range obs {
		delete(f.runs, obs[i].Run)
		if obs[i].Kind == pcl.KindIOV {
			delete(f.iovs, obs[i].Payload)
		}
	}
}

// reset forgets everything.
func (f *facts) reset() {
	f.mu.Lock()
	clear(f.runs)
	clear(f.iovs)
	f.mu.Unlock()
}

// keep drops the entries of runs that are not open any more, and the IOVs of payloads no kept run
// harvested.
func (f *facts) keep(open []uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for r := range f.runs {
		if _, ok := slices.BinarySearch(open, r); !ok {
			delete(f.runs, r)
		}
	}
	used := map[string]bool{}
	for _, e := range f.runs {
		for _, h := range harvestedHashes(e.obs.obs) {
			used[h] = true
		}
	}
	for h := range f.iovs {
		if !used[h] {
			delete(f.iovs, h)
		}
	}
}

// size is how many runs and payloads have entries (for tests).
func (f *facts) size() (runs, payloads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs), len(f.iovs)
}
