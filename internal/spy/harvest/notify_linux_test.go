//go:build linux

package harvest

import (
	"syscall"
	"testing"
)

// FuzzParseEvents: no record layout, however garbled, makes the parser read past its buffer, and
// every whole record is returned with its name cut at the first NUL.
func FuzzParseEvents(f *testing.F) {
	t := &tracker{}
	t.inject(1, syscall.IN_CREATE, "Run1@T@u.db\x00\x00\x00\x00\x00")
	t.inject(-1, syscall.IN_Q_OVERFLOW, "")
	f.Add(t.fake)
	f.Add(t.fake[:20])
	f.Add([]byte{})
	f.Fuzz(func(tt *testing.T, buf []byte) {
		total := 0
		parseEvents(buf, func(wd int32, mask uint32, name string) {
			total += syscall.SizeofInotifyEvent + len(name)
			for i := range len(name) {
				if name[i] == 0 {
					tt.Fatalf("name %q holds a NUL", name)
				}
			}
		})
		if total > len(buf) {
			tt.Fatalf("records of %d bytes from a buffer of %d", total, len(buf))
		}
	})
}
