//go:build !unix

package sqlite

// writable cannot ask the kernel ahead of time on this platform; SQLite's own check in probeWritable
// still refuses a read-only database.
func writable(string) error { return nil }
