package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// StateMemo remembers decoded run states with the stored bytes each was decoded from, for the
// backends' reads of run_states. The board's first page, the open runs and the run pages read the same
// unchanged states again and again (a released run's state never changes), and decoding one (its
// workflows' files, hashes and evidence) was over half of each board request. A state whose bytes are
// those remembered is answered from memory as a deep copy; any other is decoded. The bytes are
// compared, not a hash of them: a stale state is never answered.
//
// Memory is bounded by MaxBytes of stored bytes (each state held once more decoded); past it, entries
// are dropped in no particular order. The zero value is ready to use with the default bound.
type StateMemo struct {
	// MaxBytes bounds the stored bytes kept; 0 means DefaultStateMemoBytes.
	MaxBytes int

	mu    sync.Mutex
	runs  map[uint32]memoState
	bytes int
}

// DefaultStateMemoBytes is a StateMemo's default bound: a few hundred states of 18 workflows (about
// 10 KB each), more than a board page, its blocked runs and the open runs together.
const DefaultStateMemoBytes = 8 << 20

type memoState struct {
	raw []byte
	rs  pcl.RunState
}

// Decode is json.Unmarshal of a run's stored state, answered from memory when raw is the stored
// state remembered for run. raw is not kept: the caller may reuse it.
func (m *StateMemo) Decode(run uint32, raw []byte) (pcl.RunState, error) {
	m.mu.Lock()
	got, ok := m.runs[run]
	m.mu.Unlock()
	if ok && bytes.Equal(got.raw, raw) {
		return got.rs.Clone(), nil
	}
	var rs pcl.RunState
	if err := json.Unmarshal(raw, &rs); err != nil {
		return pcl.RunState{}, fmt.Errorf("decode stored state of run %d: %w", run, err)
	}
	m.keep(run, memoState{raw: bytes.Clone(raw), rs: rs.Clone()})
	return rs, nil
}

func (m *StateMemo) keep(run uint32, e memoState) {
	limit := m.MaxBytes
	if limit <= 0 {
		limit = DefaultStateMemoBytes
	}
	if len(e.raw) > limit/4 {
		return // one state that large would push out the rest
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs == nil {
		m.runs = map[uint32]memoState{}
	}
	if old, ok := m.runs[run]; ok {
		delete(m.runs, run)
		m.bytes -= len(old.raw)
	}
	for r, old := range m.runs {
		if m.bytes+len(e.raw) <= limit {
			break
		}
		delete(m.runs, r)
		m.bytes -= len(old.raw)
	}
	m.runs[run] = e
	m.bytes += len(e.raw)
}

// Len is how many states are remembered and their stored bytes.
func (m *StateMemo) Len() (states, storedBytes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.runs), m.bytes
}
