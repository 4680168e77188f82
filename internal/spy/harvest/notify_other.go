//go:build !linux

package harvest

import "errors"

// notificationsSupported: elsewhere than on Linux there is no tracker, and the mtime rules apply
// everywhere.
const notificationsSupported = false

var errNoNotifications = errors.New("change notifications of the scan need Linux (inotify)")

type tracker struct{ count int }

func openTracker() (*tracker, error)            { return nil, errNoNotifications }
func (t *tracker) watch(string) error           { return errNoNotifications }
func (t *tracker) unwatch(string)               {}
func (t *tracker) watched(string) bool          { return false }
func (t *tracker) drain(*changes) error         { return nil }
func (t *tracker) inject(int32, uint32, string) {}
func (t *tracker) close() error                 { return nil }
func fsTypeOf(string) (int64, error)            { return 0, errNoNotifications }
