// Package pgtest gives tests a real PostgreSQL server: the one named by $SPYAGENCY_TEST_POSTGRES (a DSN),
// or a private one started on loopback with initdb and pg_ctl from the PATH, stopped when the test ends.
// When neither is possible the test is skipped with the reason, never failed: a machine without
// PostgreSQL is not a broken build.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// EnvDSN names the environment variable holding the DSN of an existing server to test against.
const EnvDSN = "SPYAGENCY_TEST_POSTGRES"

// DSN returns a DSN (postgres://...) of a server the test may use, starting one if needed. An existing
// server named by EnvDSN is shared: tests must use their own table names there.
func DSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	s, err := start(t)
	if err != nil {
		t.Skipf("pgtest: no PostgreSQL for this test (set %s to a DSN to use an existing server): %v", EnvDSN, err)
	}
	return s
}

// runner runs the server tools: as root, through runuser as the postgres user, because PostgreSQL
// refuses to run as root.
type runner struct {
	asPostgres bool
}

func (r runner) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	if r.asPostgres {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

func (r runner) run(ctx context.Context, name string, args ...string) error {
	c := r.cmd(ctx, name, args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s %v: %w: %s", name, args, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func start(t testing.TB) (string, error) {
	for _, tool := range []string{"initdb", "pg_ctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s is not on the PATH", tool)
		}
	}
	r := runner{asPostgres: os.Geteuid() == 0}
	// Not t.TempDir: its parent is private to root, and the server runs as postgres.
	base, err := os.MkdirTemp("", "spyagency-pgtest-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if r.asPostgres {
		if _, err := exec.LookPath("runuser"); err != nil {
			return "", fmt.Errorf("running as root and runuser is not on the PATH")
		}
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			return "", err
		}
	}
	data := filepath.Join(base, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.run(ctx, "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		return "", err
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, base)
	logFile := filepath.Join(base, "server.log")
	if err := r.run(ctx, "pg_ctl", "-D", data, "-l", logFile, "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(logFile)
		return "", fmt.Errorf("%w; server log: %s", err, bytes.TrimSpace(log))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.run(ctx, "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"); err != nil {
			t.Logf("pgtest: stop server: %v", err)
		}
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), nil
}

// freePort asks the OS for a free loopback port. Another process could take it before the server binds
// it; pg_ctl then fails and the test says so, which is rare enough to accept.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
