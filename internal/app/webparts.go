package app

import (
	"context"
	"errors"
	"net/http"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web"
)

// The parts of the process the web reads, each answering one of its small interfaces.

// readiness is the web's Readiness: the process serves once Start ran every part, and while the store
// answers.
type readiness struct {
	up    <-chan struct{}
	store store.Store
}

func (r readiness) Ready(ctx context.Context) error {
	select {
	case <-r.up:
	default:
		return errors.New("starting")
	}
	_, _, err := r.store.Setting(ctx, "ready-probe")
	return err
}

// firstUnready is the web's FirstUnready: the run Tier-0's pull API would name, from the same
// summary snapshot of the decisions.
type firstUnready struct {
	store  store.Store
	policy pcl.Policy
}

func (f firstUnready) FirstUnready(ctx context.Context) (uint32, error) {
	states, err := steer.StoreSource{Store: f.store}.Snapshot(ctx, 0)
	if err != nil {
		return 0, err
	}
	return steer.FirstUnreadyRun(states, f.policy), nil
}

// closingHandler serves everything and, on shutdown, ends the page's event streams, which would
// otherwise hold the graceful shutdown until its deadline.
type closingHandler struct {
	http.Handler
	web *web.Server
}

func (h closingHandler) Close() { h.web.Close() }
