package harvest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// Watch calls notify whenever the file system reports a change in the harvest area, so the runner can
// poll early, and has the next scan list the changed file's directory again even when its modification
// time did not move (a file written in place); the runner's periodic poll and the full rescan stay the
// safety net for what notifications miss (network file systems such as EOS's FUSE mount may give
// none). A directory the scan's own tracker watches (notify.go) is not listed again for it: the
// tracker's events already say what changed; a lost notification still has everything listed again.
// It watches every directory of the tree, adding new ones as they appear, and returns when ctx ends or
// the notifications fail.
//
// notify must not block; it is called from Watch's goroutine, and calls may come in bursts.
func (s *Spy) Watch(ctx context.Context, notify func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("harvest spy: file notifications unavailable: %w", err)
	}
	defer w.Close()
	if err := s.addTree(w, s.cfg.Dir); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("harvest spy: file notifications closed")
			}
			if ev.Has(fsnotify.Create) {
				// A new year's directory (or any subdirectory) must be watched too; adding a plain file
				// fails harmlessly.
				if err := s.addTree(w, ev.Name); err != nil {
					s.log.Debug("harvest watch: cannot watch new path", "path", ev.Name, "err", err)
				}
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
				s.markDirty(filepath.Dir(ev.Name))
				notify()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("harvest spy: file notifications closed")
			}
			// An overflow means events were lost: a poll recovers them.
			s.log.Warn("harvest watch: notification error; rescanning everything", "err", err)
			s.markDirty("")
			notify()
		}
	}
}

func (s *Spy) addTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return fmt.Errorf("harvest spy: watching %s: %w", root, err)
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if err := w.Add(path); err != nil {
			return fmt.Errorf("harvest spy: watching %s: %w", path, err)
		}
		return nil
	})
}
