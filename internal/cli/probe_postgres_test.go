package cli

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/dbdriver"
	"github.com/cms-pcl/spyagency/internal/pgtest"
)

// TestProbeCondDBPostgres probes a condition DB on a real PostgreSQL server, through the binary's own
// command: it passes only if the program registers its PostgreSQL driver (internal/app/drivers.go)
// rather than borrowing one from a package that happens to import it.
func TestProbeCondDBPostgres(t *testing.T) {
	t.Parallel()
	base := pgtest.DSN(t)
	if err := dbdriver.Check(dbdriver.Postgres); err != nil {
		t.Fatalf("spyagency does not register its PostgreSQL driver (internal/app/drivers.go): %v", err)
	}
	db, err := sql.Open(dbdriver.Postgres, base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A schema of its own, so that a shared server ($SPYAGENCY_TEST_POSTGRES) keeps its tables.
	schema := fmt.Sprintf("probe_conddb_%d", time.Now().UnixNano())
	ctx := t.Context()
	// CMSSW's CondDB v2 tables with their upper-case names (cms-interfaces.md §3.1), as a PostgreSQL copy
	// of the Oracle schema would declare them.
	for _, stmt := range []string{
		`CREATE SCHEMA ` + schema,
		`CREATE TABLE ` + schema + `."TAG" ("NAME" VARCHAR(4000) PRIMARY KEY, "TIME_TYPE" VARCHAR(4000) NOT NULL,
			"OBJECT_TYPE" VARCHAR(4000) NOT NULL, "SYNCHRONIZATION" VARCHAR(4000) NOT NULL, "END_OF_VALIDITY" NUMERIC(20) NOT NULL,
			"DESCRIPTION" VARCHAR(4000) NOT NULL, "LAST_VALIDATED_TIME" NUMERIC(20) NOT NULL, "INSERTION_TIME" TIMESTAMP NOT NULL,
			"MODIFICATION_TIME" TIMESTAMP NOT NULL)`,
		`CREATE TABLE ` + schema + `."PAYLOAD" ("HASH" VARCHAR(40) PRIMARY KEY, "OBJECT_TYPE" VARCHAR(4000) NOT NULL,
			"DATA" BYTEA NOT NULL, "STREAMER_INFO" BYTEA NOT NULL, "VERSION" VARCHAR(20) NOT NULL, "INSERTION_TIME" TIMESTAMP NOT NULL)`,
		`CREATE TABLE ` + schema + `."IOV" ("TAG_NAME" VARCHAR(4000) NOT NULL, "SINCE" NUMERIC(20) NOT NULL,
			"INSERTION_TIME" TIMESTAMP NOT NULL, "PAYLOAD_HASH" VARCHAR(40) NOT NULL, PRIMARY KEY ("TAG_NAME", "SINCE", "INSERTION_TIME"))`,
		`INSERT INTO ` + schema + `."TAG" VALUES ('SiStripApvGain_PCL_v0_prompt', 'Run', 'SiStripApvGain', 'pcl', 18446744073709551615,
			'PCL gains', 0, '2025-06-14 08:00:00', '2025-06-14 08:00:00')`,
		`INSERT INTO ` + schema + `."PAYLOAD" VALUES ('` + strings.Repeat("a", 40) + `', 'SiStripApvGain', '\x00', '\x00', '3.2', '2025-06-14 09:00:00'),
			('` + strings.Repeat("b", 40) + `', 'SiStripApvGain', '\x00', '\x00', '3.2', '2025-06-14 10:00:00')`,
		`INSERT INTO ` + schema + `."IOV" VALUES ('SiStripApvGain_PCL_v0_prompt', 392669, '2025-06-14 09:00:01', '` + strings.Repeat("a", 40) + `'),
			('SiStripApvGain_PCL_v0_prompt', 392671, '2025-06-14 10:00:01', '` + strings.Repeat("b", 40) + `')`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%.60s: %v", stmt, err)
		}
	}
	t.Cleanup(func() { _, _ = db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	dsn := base + sep + "search_path=" + schema
	code, out, errs := run(t, "probe", "conddb", "--dsn", dsn, "--tag", "SiStripApvGain_PCL_v0_prompt")
	if code != 0 {
		t.Fatalf("probe conddb on PostgreSQL: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want the 2 IOVs:\n%s", len(lines), out)
	}
	for i, want := range []struct {
		since   float64
		payload string
	}{{392669, strings.Repeat("a", 40)}, {392671, strings.Repeat("b", 40)}} {
		var o map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &o); err != nil {
			t.Fatal(err)
		}
		if o["tag"] != "SiStripApvGain_PCL_v0_prompt" || o["since"] != want.since || o["payload"] != want.payload {
			t.Errorf("line %d = %s, want since %v payload %s", i, lines[i], want.since, want.payload)
		}
	}
	// With a run open, the spy reads each tag from the IOV in effect at it up, a range of the primary
	// key found by MAX("SINCE") (conddbv2's InEffect, IOVCountsFrom, IOVsFrom), here on PostgreSQL's
	// NUMERIC sinces: at 392670 the IOV in effect is 392669, so both rows; at 392671, that one alone.
	for at, want := range map[string][]float64{"392670": {392669, 392671}, "392671": {392671}, "392669": {392669, 392671}} {
		code, out, errs := run(t, "probe", "conddb", "--dsn", dsn, "--tag", "SiStripApvGain_PCL_v0_prompt", "--run", at)
		if code != 0 {
			t.Fatalf("probe conddb --run %s on PostgreSQL: exit %d: %s", at, code, errs)
		}
		var got []float64
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var o map[string]any
			if err := json.Unmarshal([]byte(line), &o); err != nil {
				t.Fatalf("--run %s: %q: %v", at, line, err)
			}
			since, _ := o["since"].(float64)
			got = append(got, since)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("--run %s: sinces %v, want %v (from the IOV in effect at the run up)", at, got, want)
		}
	}
}
