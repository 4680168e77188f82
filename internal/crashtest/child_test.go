//go:build unix

package crashtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The agency binary is built once per test binary run, without the race detector: the children are
// what the suite exercises, and a race-instrumented agency would be several times slower for nothing
// (its races are the business of the packages' own tests).
var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	errBuild  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func agencyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goCmd, err := exec.LookPath("go") // go test puts its own GOROOT/bin first on PATH
		if err != nil {
			errBuild = fmt.Errorf("no go command to build the agency with: %w", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "spyagency-crashtest-"); err != nil {
			errBuild = err
			return
		}
		binPath = filepath.Join(buildDir, "spyagency")
		start := time.Now()
		cmd := exec.Command(goCmd, "build", "-o", binPath, "github.com/cms-pcl/spyagency/cmd/spyagency")
		if out, err := cmd.CombinedOutput(); err != nil {
			errBuild = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		t.Logf("built the agency in %s", time.Since(start).Round(100*time.Millisecond))
	})
	if errBuild != nil {
		t.Fatal(errBuild)
	}
	return binPath
}

// servingLine is the App's log line once its web server listens (internal/app: "serving addr=...").
var servingLine = regexp.MustCompile(`\bmsg=serving addr=(\S+)`)

// child is one spyagency serve process, in a process group of its own.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time

	served chan string // the bound address, once
	exited chan struct{}

	mu      sync.Mutex
	waitErr error
	killed  bool // by us, with SIGKILL
	errors  int  // level=ERROR lines logged
}

// startChild starts `spyagency serve --config cfg` with its stderr copied to logPath. The child is
// killed (with its process group) when the test ends, whatever happened, and dies with the test binary
// if that is killed (Pdeathsig on Linux).
func startChild(t *testing.T, bin, name, cfg, logPath string) *child {
	t.Helper()
	c := &child{name: name, logPath: logPath, served: make(chan string, 1), exited: make(chan struct{})}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, "serve", "--config", cfg, "--addr", "127.0.0.1:0")
	c.cmd.SysProcAttr = procAttr()
	// The log lines are matched as text below; a pipe would get JSON.
	c.cmd.Env = append(os.Environ(), "SPYAGENCY_LOG_FORMAT=text")
	c.cmd.Stdout = logf // serve prints nothing on stdout; keep whatever it would say
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	c.started = time.Now()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		announced := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !announced {
				if m := servingLine.FindStringSubmatch(line); m != nil {
					announced = true
					c.served <- m[1]
				}
			}
			if strings.Contains(line, "level=ERROR") {
				c.mu.Lock()
				c.errors++
				c.mu.Unlock()
			}
		}
		_, _ = io.Copy(logf, stderr)
	}()
	go func() {
		<-copied // Wait must not run before every read of the pipe is done
		err := c.cmd.Wait()
		logf.Close()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.kill()
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", c.name, c.cmd.Process.Pid)
		}
	})
	return c
}

// kill sends SIGKILL to the child's process group; it is harmless after the child exited.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.mu.Lock()
	c.killed = true
	c.mu.Unlock()
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
}

// kill9 kills the child and waits for it to be gone.
func (c *child) kill9(t *testing.T) {
	t.Helper()
	c.kill()
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s (pid %d) did not exit after SIGKILL", c.name, c.cmd.Process.Pid)
	}
}

// stop asks the child to shut down (SIGTERM, as systemd would) and checks that it exits cleanly in time.
func (c *child) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second): // the configured shutdown_timeout is 5 s
		c.kill9(t)
		t.Fatalf("%s did not stop within 20 s of SIGTERM; killed\n%s", c.name, c.tail(20))
	}
	if err := c.exitErr(); err != nil {
		t.Fatalf("%s: graceful stop failed: %v\n%s", c.name, err, c.tail(20))
	}
}

func (c *child) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitErr
}

func (c *child) errorLines() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errors
}

// waitServing returns the child's base URL once it listens.
func (c *child) waitServing(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case addr := <-c.served:
		c.served <- addr // keep it for a later call
		return "http://" + addr
	case <-c.exited:
		t.Fatalf("%s exited before serving: %v\n%s", c.name, c.exitErr(), c.tail(30))
	case <-time.After(within):
		t.Fatalf("%s did not serve within %s\n%s", c.name, within, c.tail(30))
	}
	return ""
}

// tail is the end of the child's log, for failure messages.
func (c *child) tail(n int) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + c.name + " log (" + c.logPath + "), last lines:\n" + strings.Join(lines, "\n")
}

var api = &http.Client{Timeout: 10 * time.Second}

// getJSON reads one JSON answer of the child's API.
func getJSON(base, path string, v any) error {
	resp, err := api.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
