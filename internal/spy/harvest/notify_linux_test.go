//go:build linux

package harvest

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestTrustedOverflow: a full queue (IN_Q_OVERFLOW) has everything listed again, the tracker starts
// over, and nothing changed meanwhile is lost.
func TestTrustedOverflow(t *testing.T) {
	t.Parallel()
	s, year := trustedYear(t, true)
	first := s.trk
	write(t, filepath.Join(year, "Run390002@SiStripApvGain_pcl@u.txt"), "x", now.Add(-time.Hour))
	s.trk.inject(-1, syscall.IN_Q_OVERFLOW, "")
	g := grouping(t, s)
	if !s.last.full || s.last.listed != 2 || !strings.Contains(g, "Run390002@") || s.trk == first {
		t.Fatalf("after an overflow: %+v, new tracker %v, grouping:\n%s", s.last, s.trk != first, g)
	}
	if !s.dirs[year].watched || !s.trk.watched(year) {
		t.Fatal("not watched again after the overflow")
	}
	write(t, filepath.Join(year, "Run390003@SiStripApvGain_pcl@u.txt"), "x", now.Add(-time.Hour))
	if g = grouping(t, s); s.last.listed != 0 || !strings.Contains(g, "Run390003@") {
		t.Fatalf("after the restart: %+v, grouping:\n%s", s.last, g)
	}
}
