// Package pgtest gives tests a real PostgreSQL server: the one named by $SPYAGENCY_TEST_POSTGRES (a DSN),
// or a private one started on loopback with initdb and postgres from the PATH.
//
// A private server is started once per test binary, on the first call, and shared by its tests: an
// initdb costs seconds, a schema milliseconds. Schema gives each test a schema of its own on it, so that
// tests run in parallel without seeing each other's tables. The server runs as a child of the test
// binary (as the postgres user when the tests run as root, since PostgreSQL refuses to run as root) and
// is told to die with it (Pdeathsig), so that a test binary killed by a timeout leaves no server behind;
// the data directory of a server whose test binary is gone is removed by the next start.
//
// Without PostgreSQL the test is skipped with the reason: a machine without it is not a broken build.
// With $SPYAGENCY_REQUIRE_POSTGRES set (CI sets it) it fails instead, so that CI cannot pass by skipping.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the DSN of an existing server to test against.
const EnvDSN = "SPYAGENCY_TEST_POSTGRES"

// EnvRequire names the environment variable that, when set to anything but "" or "0", makes a test
// that cannot have a server fail instead of skipping.
const EnvRequire = "SPYAGENCY_REQUIRE_POSTGRES"

// dirPrefix names the private servers' directories in the system's temporary directory.
const dirPrefix = "spyagency-pgtest-"

var (
	once      sync.Once
	sharedDSN string
	startErr  error
)

// DSN returns a DSN (postgres://...) of a server the test may use, starting the binary's private one on
// first use. The server is shared: a test must use names of its own there (see Schema).
func DSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	once.Do(func() { sharedDSN, startErr = start() })
	if startErr != nil {
		msg := fmt.Sprintf("pgtest: no PostgreSQL for this test (set %s to a DSN to use an existing server): %v", EnvDSN, startErr)
		if required() {
			t.Fatalf("%s\n%s is set: PostgreSQL tests must run here, not skip", msg, EnvRequire)
		}
		t.Skip(msg)
	}
	return sharedDSN
}

func required() bool {
	v := os.Getenv(EnvRequire)
	return v != "" && v != "0"
}

// Schema creates a schema of the test's own on the server and returns a DSN whose connections use it
// (search_path), dropped with everything in it when the test ends.
func Schema(t testing.TB) string {
	t.Helper()
	base := DSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	exec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Logf("pgtest: drop schema %s: %v", name, err)
		}
	})
	return WithParam(base, "search_path", name)
}

// WithParam adds a query parameter to a postgres:// DSN.
func WithParam(dsn, key, value string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}

// start makes a private server: initdb into a fresh directory, then postgres on a loopback port the OS
// chose, and waits until it accepts connections.
func start() (string, error) {
	for _, tool := range []string{"initdb", "postgres"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s is not on the PATH (on Debian: /usr/lib/postgresql/15/bin)", tool)
		}
	}
	removeOrphans()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root, and there is no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: it belongs to one test, and its parent is private to root while the server runs as
	// postgres.
	base, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(base, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return "", err
	}
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", err
		}
	}
	data := filepath.Join(base, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	initdb := exec.CommandContext(ctx, "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.Dir = base
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(base)
		return "", fmt.Errorf("initdb: %w: %s", err, bytes.TrimSpace(out))
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	logFile, err := os.Create(filepath.Join(base, "server.log"))
	if err != nil {
		return "", err
	}
	if cred != nil {
		_ = logFile.Chown(int(cred.Uid), int(cred.Gid))
	}
	srv := exec.Command("postgres", "-D", data, "-p", strconv.Itoa(port), "-k", base,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300")
	srv.Dir = base
	srv.Stdout, srv.Stderr = logFile, logFile
	// SIGQUIT is PostgreSQL's immediate shutdown; its backends exit when the postmaster is gone.
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	started := make(chan error, 1)
	exited := make(chan error, 1)
	// Pdeathsig fires when the thread that started the child ends, not the process: this goroutine keeps
	// its thread, and lives as long as the server.
	go func() {
		runtime.LockOSThread()
		if err := srv.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- srv.Wait()
	}()
	if err := <-started; err != nil {
		return "", fmt.Errorf("start postgres: %w", err)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile.Name())
			return "", fmt.Errorf("postgres exited (%v); server log: %s", err, bytes.TrimSpace(log))
		default:
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		ccancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return dsn, nil
		}
		if time.Now().After(deadline) {
			_ = srv.Process.Signal(syscall.SIGQUIT)
			log, _ := os.ReadFile(logFile.Name())
			return "", fmt.Errorf("postgres did not accept connections within 60 s: %v; server log: %s", err, bytes.TrimSpace(log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeOrphans deletes the directories of private servers whose test binary is gone (killed, or ended
// without a chance to clean up: the server died with it, its files stayed).
func removeOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // being made right now, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == nil || pid == os.Getpid() {
			continue // its test binary still runs
		}
		if pm, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			if spid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pm), "\n", 2)[0])); err == nil && syscall.Kill(spid, 0) == nil {
				continue // its server outlived the binary; leave it to its owner
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// freePort asks the OS for a free loopback port. Another process could take it before the server binds
// it; the server then exits and the start says so, which is rare enough to accept.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
