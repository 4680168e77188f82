//go:build linux

package harvest

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dir is a directory being listed, open so that its entries are stat'ed relative to it: a year folder
// holds thousands of young files, and resolving each one's whole path again cost four times the stat.
type dir struct {
	f *os.File
}

func openDir(path string) (*dir, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &dir{f: f}, nil
}

// names lists the directory's names in the order the file system gives.
func (d *dir) names() ([]string, error) { return d.f.Readdirnames(-1) }

// lstat is os.Lstat of one dirEntry, without following a symbolic link.
func (d *dir) lstat(name string) (dirEntry, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(int(d.f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return dirEntry{}, &os.PathError{Op: "lstat", Path: name, Err: err}
		}
		break
	}
	mode := st.Mode & unix.S_IFMT
	return dirEntry{dir: mode == unix.S_IFDIR, regular: mode == unix.S_IFREG, size: st.Size,
		mtime: time.Unix(st.Mtim.Unix())}, nil
}

func (d *dir) close() error { return d.f.Close() }

// devIno is a directory's device and inode: a directory replaced under the same path, or a file system
// mounted over it, is not the one watched.
func devIno(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}
