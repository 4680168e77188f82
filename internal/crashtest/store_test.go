//go:build unix

package crashtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/postgres"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// checkStore runs pragma (integrity_check or quick_check) on the SQLite store file through a read-only
// connection of its own, so that nothing the check does can repair or hide damage. Only while no child
// runs. On PostgreSQL a killed client cannot damage the server's files (the server, not the child,
// writes them, behind its write-ahead log); what a killed child may leave wrong there is the store's
// content, which the suite's checks read through the store's code.
func (h *harness) checkStore(ctx context.Context, pragma string) error {
	if h.storePath == "" {
		return nil
	}
	return checkStoreFile(ctx, h.storePath, pragma)
}

func checkStoreFile(ctx context.Context, path, pragma string) error {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro"
	db, err := sql.Open("sqlite", dsn) // modernc.org/sqlite, registered by the store package
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return fmt.Errorf("PRAGMA %s: %w", pragma, err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("PRAGMA %s: %w", pragma, err)
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		return fmt.Errorf("PRAGMA %s: %s", pragma, strings.Join(msgs, "; "))
	}
	return nil
}

// snapshot is what the store holds that the checks compare: per run its state and every decision
// version, the audit entries of decisions, and the outbox.
type snapshot struct {
	states    map[uint32]pcl.RunState
	decisions map[uint32][]pcl.Decision
	audit     map[uint32][]store.AuditEntry // action "decision" only
	outbox    []store.OutboxEntry
}

func (s snapshot) versions() int {
	n := 0
	for _, ds := range s.decisions {
		n += len(ds)
	}
	return n
}

// readStore reads a snapshot through the store's own code (store.Store), so the checks do not depend on
// the schema. Only while no child runs.
func readStore(ctx context.Context, dsn string) (snapshot, error) {
	var st store.Store
	var err error
	if postgres.IsDSN(dsn) {
		st, err = postgres.Open(ctx, dsn, postgres.Options{})
	} else {
		st, err = sqlite.OpenDSN(ctx, dsn, sqlite.Options{})
	}
	if err != nil {
		return snapshot{}, err
	}
	defer st.Close()
	s := snapshot{states: map[uint32]pcl.RunState{}, decisions: map[uint32][]pcl.Decision{}, audit: map[uint32][]store.AuditEntry{}}
	for before := uint32(0); ; {
		states, err := st.RunStates(ctx, store.RunQuery{Before: before, Limit: 1000})
		if err != nil {
			return snapshot{}, err
		}
		for _, rs := range states {
			s.states[rs.Run] = rs
		}
		if len(states) < 1000 {
			break
		}
		before = states[len(states)-1].Run
	}
	for run := range s.states {
		ds, err := st.Decisions(ctx, run)
		if err != nil {
			return snapshot{}, err
		}
		if len(ds) > 0 {
			s.decisions[run] = ds
		}
		entries, err := st.Audit(ctx, store.AuditQuery{Run: run, Limit: 1 << 20})
		if err != nil {
			return snapshot{}, err
		}
		for _, e := range entries {
			if e.Action == "decision" {
				s.audit[run] = append(s.audit[run], e)
			}
		}
	}
	if s.outbox, err = st.Outbox(ctx, "", 1<<30); err != nil {
		return snapshot{}, err
	}
	return s, nil
}
