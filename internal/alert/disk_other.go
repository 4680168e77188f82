//go:build !unix

package alert

// diskKnown: the free space is read on Unix systems only; elsewhere the rule does not look.
const diskKnown = false

func freeSpace(path string) DiskSpace { return DiskSpace{Path: path} }
