//go:build linux

package harvest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// notificationsSupported: this system has a tracker (inotify).
const notificationsSupported = true

// trackMask is what the tracker asks the kernel to report of a watched directory: every change of an
// entry (created, removed, renamed in or out, written, closed after writing, its times or mode set) and
// the directory itself going away.
const trackMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
	syscall.IN_MODIFY | syscall.IN_CLOSE_WRITE | syscall.IN_ATTRIB | syscall.IN_DELETE_SELF |
	syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR

// tracker is an inotify instance whose queue the scan drains, synchronously, when it starts. The kernel
// queues an event in the same system call that changes a watched directory, so every change made
// before the drain is in what it read: no goroutine, nothing racing the scan.
type tracker struct {
	fd    int
	dirs  map[int32]string // watch descriptor -> directory
	wds   map[string]int32
	buf   []byte
	fake  []byte // records a test injects, read before the kernel's at the next drain
	count int    // events read, for tests
}

func openTracker() (*tracker, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	return &tracker{fd: fd, dirs: map[int32]string{}, wds: map[string]int32{}, buf: make([]byte, 64<<10)}, nil
}

// watch adds a watch on dir. It must be called before dir is listed: then the listing and the events
// drained after it are the directory's content.
func (t *tracker) watch(dir string) error {
	wd, err := syscall.InotifyAddWatch(t.fd, dir, trackMask)
	if err != nil {
		return &watchError{dir: dir, err: err}
	}
	w := int32(wd)
	if other, ok := t.dirs[w]; ok && other != dir {
		// The same directory under two paths (a bind mount): its events would name only one of them.
		return &watchError{dir: dir, err: fmt.Errorf("already watched as %s", other)}
	}
	t.dirs[w], t.wds[dir] = dir, w
	return nil
}

// watchError is a watch the kernel refused (ENOSPC: fs.inotify.max_user_watches reached).
type watchError struct {
	dir string
	err error
}

func (e *watchError) Error() string { return fmt.Sprintf("inotify_add_watch %s: %v", e.dir, e.err) }
func (e *watchError) Unwrap() error { return e.err }

// unwatch drops dir's watch (the directory left the area, or was moved).
func (t *tracker) unwatch(dir string) {
	wd, ok := t.wds[dir]
	if !ok {
		return
	}
	delete(t.wds, dir)
	delete(t.dirs, wd)
	_, _ = syscall.InotifyRmWatch(t.fd, uint32(wd)) // EINVAL when the kernel already dropped it
}

// watched says whether dir has a live watch.
func (t *tracker) watched(dir string) bool {
	_, ok := t.wds[dir]
	return ok
}

// drain reads the queue until it is empty and adds what it says to ch.
func (t *tracker) drain(ch *changes) error {
	if len(t.fake) > 0 {
		t.handle(t.fake, ch)
		t.fake = nil
	}
	for {
		n, err := syscall.Read(t.fd, t.buf)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return nil
		case err != nil:
			return fmt.Errorf("reading inotify events: %w", err)
		case n <= 0:
			return nil
		}
		t.handle(t.buf[:n], ch)
	}
}

// handle turns records into changes: a name in a watched directory is to be stat'ed again; a directory
// gone, moved or no longer watched is to be listed again with its parent; a full queue (the kernel
// dropped events) is everything to be listed again.
func (t *tracker) handle(buf []byte, ch *changes) {
	parseEvents(buf, func(wd int32, mask uint32, name string) {
		t.count++
		if mask&syscall.IN_Q_OVERFLOW != 0 {
			ch.all = true
			return
		}
		dir, ok := t.dirs[wd]
		if !ok {
			return // a watch dropped since: its directory is being listed again anyway
		}
		if mask&(syscall.IN_IGNORED|syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF|syscall.IN_UNMOUNT) != 0 {
			t.unwatch(dir)
			ch.relistDir(dir)
			ch.relistDir(filepath.Dir(dir))
			return
		}
		const entry = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO
		if name != "" && (mask&syscall.IN_ISDIR == 0 || mask&entry != 0) {
			ch.name(dir, name)
		}
		// An event of the directory itself, or a subdirectory's times or mode set, changes none of
		// its entries.
	})
}

// inject queues a record as if the kernel had (tests: IN_Q_OVERFLOW cannot be provoked at will).
func (t *tracker) inject(wd int32, mask uint32, name string) {
	rec := make([]byte, syscall.SizeofInotifyEvent+len(name))
	binary.NativeEndian.PutUint32(rec[0:], uint32(wd))
	binary.NativeEndian.PutUint32(rec[4:], mask)
	binary.NativeEndian.PutUint32(rec[12:], uint32(len(name)))
	copy(rec[syscall.SizeofInotifyEvent:], name)
	t.fake = append(t.fake, rec...)
}

func (t *tracker) close() error {
	if t == nil || t.fd < 0 {
		return nil
	}
	err := syscall.Close(t.fd)
	t.fd = -1
	return err
}

// parseEvents calls fn for each whole inotify_event record in buf (wd, mask, cookie, len, then len
// bytes of NUL-padded name); a truncated or garbled tail is dropped, never read past.
func parseEvents(buf []byte, fn func(wd int32, mask uint32, name string)) {
	const head = syscall.SizeofInotifyEvent
	for len(buf) >= head {
		wd := int32(binary.NativeEndian.Uint32(buf[0:]))
		mask := binary.NativeEndian.Uint32(buf[4:])
		n := binary.NativeEndian.Uint32(buf[12:])
		if uint64(n) > uint64(len(buf)-head) {
			return
		}
		raw := buf[head : head+int(n)]
		for i, c := range raw {
			if c == 0 {
				raw = raw[:i]
				break
			}
		}
		fn(wd, mask, string(raw))
		buf = buf[head+int(n):]
	}
}

// fsTypeOf is statfs(2)'s f_type of the file system holding path.
func fsTypeOf(path string) (int64, error) {
	var st syscall.Statfs_t
	for {
		err := syscall.Statfs(path, &st)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
		}
		return int64(st.Type), nil
	}
}
