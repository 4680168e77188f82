package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestServer gets a server and a schema on it, and checks that the schema is the one connections use.
func TestServer(t *testing.T) {
	t.Parallel()
	dsn := Schema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var schema string
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_schema(), current_setting('server_version_num')::int").Scan(&schema, &version); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(schema, "t_") {
		t.Errorf("current schema %q, want the test's own", schema)
	}
	if version < 150000 {
		t.Errorf("server version %d, want PostgreSQL 15 or later", version)
	}
}

// TestHelperNeedsServer is run by TestWithoutServer in a child process with no PostgreSQL on the PATH.
func TestHelperNeedsServer(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") != "1" {
		t.Skip("run by TestWithoutServer")
	}
	DSN(t)
	t.Log("got a server")
}

// TestWithoutServer: with no PostgreSQL to be had, a test skips, and with EnvRequire set it fails.
func TestWithoutServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		require  string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP: TestHelperNeedsServer"},
		{"1", true, EnvRequire + " is set"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNeedsServer$", "-test.v")
		cmd.Env = append(os.Environ(), "PATH=/nonexistent", "PGTEST_HELPER=1", EnvDSN+"=", EnvRequire+"="+tc.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s=%q: exit %v, output:\n%s\nwant failed=%v and %q", EnvRequire, tc.require, err, out, tc.wantFail, tc.want)
		}
	}
}
