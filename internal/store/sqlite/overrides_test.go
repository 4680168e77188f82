package sqlite

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestOverrideAndAuditInOneTransaction: when the audit entry cannot be written after the override's
// row was (here a trigger refuses it, as a full disk or a crash between the two would), the override
// is not stored either: an operator's action is never in force without its audit entry, nor audited
// without being in force.
func TestOverrideAndAuditInOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTemp(t, Options{})
	db, err := sql.Open("sqlite", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TRIGGER refuse_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END`); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 14, 12, 0, 0, 0, time.UTC)
	o := pcl.Observation{Source: pcl.SourceOperator, Kind: pcl.KindOverride, Run: 392669, At: at, Seen: at,
		Action: pcl.OverrideHold, Actor: "jdoe", Reason: "DT off"}
	if _, err := s.AppendOverride(ctx, o, store.AuditEntry{Actor: "jdoe", Action: "hold", Detail: "DT off"}); err == nil {
		t.Fatal("the override was stored although its audit entry was refused")
	}
	obs, err := s.Observations(ctx, store.ObservationQuery{Runs: []uint32{392669}})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 0 {
		t.Fatalf("the override is in force without its audit entry: %+v", obs)
	}
	if _, err := db.ExecContext(ctx, `DROP TRIGGER refuse_audit`); err != nil {
		t.Fatal(err)
	}
	got, err := s.AppendOverride(ctx, o, store.AuditEntry{Actor: "jdoe", Action: "hold", Detail: "DT off"})
	if err != nil {
		t.Fatalf("once the audit can be written: %v", err)
	}
	audit, err := s.Audit(ctx, store.AuditQuery{Run: 392669})
	if err != nil || len(audit) != 1 || got.Seq <= 0 {
		t.Fatalf("after the retry: Seq %d, audit %+v (%v), want the override and its one entry", got.Seq, audit, err)
	}
}
