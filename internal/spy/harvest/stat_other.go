//go:build !linux

package harvest

import (
	"os"
	"path/filepath"
)

// dir is a directory being listed; elsewhere than on Linux its entries are stat'ed by their path.
type dir struct {
	path string
	f    *os.File
}

func openDir(path string) (*dir, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &dir{path: path, f: f}, nil
}

// names lists the directory's names in the order the file system gives.
func (d *dir) names() ([]string, error) { return d.f.Readdirnames(-1) }

// lstat is os.Lstat of one dirEntry.
func (d *dir) lstat(name string) (dirEntry, error) {
	fi, err := os.Lstat(filepath.Join(d.path, name))
	if err != nil {
		return dirEntry{}, err
	}
	return dirEntry{dir: fi.IsDir(), regular: fi.Mode().IsRegular(), size: fi.Size(), mtime: fi.ModTime()}, nil
}

func (d *dir) close() error { return d.f.Close() }

// devIno is not read elsewhere than on Linux: there are no change notifications to tie to an inode.
func devIno(os.FileInfo) (dev, ino uint64) { return 0, 0 }
