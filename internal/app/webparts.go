package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web"
)

// The parts of the process the web reads, each answering one of its small interfaces.

// readiness is the web's Readiness: the process serves once Start ran every part, while the store
// answers, and, on a store replicas share, while some replica holds the leader lease.
type readiness struct {
	up    <-chan struct{}
	store store.Store
	lead  *leadership // nil: the process is its own leader
}

func (r readiness) Ready(ctx context.Context) error {
	select {
	case <-r.up:
	default:
		return errors.New("starting")
	}
	if _, _, err := r.store.Setting(ctx, "ready-probe"); err != nil {
		return err
	}
	if r.lead != nil {
		return r.lead.ready(ctx)
	}
	return nil
}

// firstUnready is the web's FirstUnready: the run Tier-0's pull API would name, from the same
// summary snapshot of the decisions.
type firstUnready struct {
	store  store.Store
	policy pcl.Policy
}

func (f firstUnready) FirstUnready(ctx context.Context) (uint32, error) {
	v, err := steer.StoreSource{Store: f.store}.Snapshot(ctx, 0, 0)
	if err != nil {
		return 0, err
	}
	return steer.FirstUnreadyIn(v, f.policy), nil
}

// pullAPI is the web's TierZeroPull: steering's handlers of Tier-0's pull API.
type pullAPI struct{ readyRuns, firstUnready http.HandlerFunc }

func (p pullAPI) ReadyRuns(w http.ResponseWriter, r *http.Request)       { p.readyRuns(w, r) }
func (p pullAPI) FirstUnreadyRun(w http.ResponseWriter, r *http.Request) { p.firstUnready(w, r) }

// configView is the web's ConfigView: the configuration in force, secrets masked (the file holds
// none, but a DSN from the command line might).
type configView struct{ cfg *config.Config }

func (c configView) ConfigYAML() string { return c.cfg.String() }

// soleReplica is the cluster of a process that is its own leader: a single process on SQLite, which
// no other replica shares the store with.
type soleReplica struct{ id string }

func (s soleReplica) Cluster(context.Context) (web.Cluster, error) {
	return web.Cluster{Self: s.id, Leader: s.id, Epoch: 1, Members: []string{s.id}}, nil
}

// replicaID names this process among replicas: the host (a pod's name on Kubernetes) and the process.
func replicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "spyagency"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
