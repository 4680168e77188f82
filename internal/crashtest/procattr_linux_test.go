package crashtest

import "syscall"

// procAttr puts a child in its own process group (so that one kill reaches everything it started) and
// has the kernel kill it if the test binary dies first (a timeout panic runs no cleanup).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
