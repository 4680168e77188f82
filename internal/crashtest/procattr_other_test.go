//go:build unix && !linux

package crashtest

import "syscall"

// procAttr puts a child in its own process group, so that one kill reaches everything it started.
// Without Pdeathsig a child outlives a test binary killed by its timeout; t.Cleanup handles the rest.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
