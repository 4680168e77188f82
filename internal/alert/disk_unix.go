//go:build unix

package alert

import "syscall"

// diskKnown: the free space is read on Unix systems only.
const diskKnown = true

// freeSpace is the space left to an unprivileged writer on the file system holding path.
func freeSpace(path string) DiskSpace {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return DiskSpace{Path: path, Err: err}
	}
	bs := uint64(st.Bsize) //nolint:unconvert // its type differs between systems
	return DiskSpace{Path: path, Free: uint64(st.Bavail) * bs, Total: uint64(st.Blocks) * bs}
}
