//go:build unix

package sqlite

import "syscall"

// writable asks the kernel whether this process may write path. It catches read-only files, directories
// and file systems before SQLite opens anything (SQLite would otherwise create its -wal and -shm files
// next to a database it then cannot write). Root passes every permission check but not a read-only
// file system.
func writable(path string) error { return syscall.Access(path, 0x2 /* W_OK */) }
