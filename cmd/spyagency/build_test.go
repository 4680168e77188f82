package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMakeBuildStampsCommit runs `make build` in a clone of this repository, with the environment's
// GOFLAGS (which may say -buildvcs=false), and checks that `spyagency version` names the commit. A git
// worktree cannot be stamped (Go looks for a .git directory, and a worktree has a .git file), so the
// test builds in a clone of HEAD with this checkout's Makefile.
func TestMakeBuildStampsCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, tool := range []string{"git", "make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on the PATH", tool)
		}
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	root := strings.TrimSpace(string(top))
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no commit to stamp: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "spyagency")
	if out, err := exec.Command("git", "clone", "-q", "--no-hardlinks", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(clone, "Makefile"), makefile, 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("make", "build")
	build.Dir = clone
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v: %s", err, out)
	}
	out, err := exec.Command(filepath.Join(clone, "spyagency"), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("spyagency version: %v: %s", err, out)
	}
	want := "commit " + strings.TrimSpace(string(head))
	if !strings.Contains(string(out), want) || !regexp.MustCompile(`(?m)^spyagency v0\.0\.0-\d{14}-[0-9a-f]{12}`).Match(out) {
		t.Errorf("spyagency version after make build says\n%s\nwant %q and a pseudo-version", out, want)
	}
}
