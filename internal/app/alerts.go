package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/alert"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web"
)

// The alerts' wiring: the evaluator (internal/alert) reads the open runs' states and the spies'
// health, and the web reads and silences through alertView. The rules, their state and the notifiers
// are all in internal/alert.

func buildAlerts(ctx context.Context, cfg *config.Config, o Options, st store.Store, ag *agency.Agency, sources alert.Sources) (*alert.Evaluator, error) {
	notifiers, err := alert.BuildNotifiers(cfg.Alerts, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	settings := cfg.Alerts
	settings.ExternalURL = cfg.AlertsURL() // from the address the server has now, flags included
	return alert.New(ctx, alert.Options{Store: st, Clock: o.Clock, Runs: ag, Sources: sources, Policy: cfg.Policy,
		Config: settings, Notifiers: notifiers, DiskPath: storeDir(cfg), Logger: o.Logger.With("part", "alerts")})
}

// storeDir is the directory of an SQLite store's file, for its free space; "" for another store.
func storeDir(cfg *config.Config) string {
	path, ok := strings.CutPrefix(cfg.Store.DSN, "sqlite:")
	if !ok {
		return ""
	}
	return filepath.Dir(strings.TrimPrefix(path, "//"))
}

// alertView is the evaluator as the web reads it: the header's firing alerts, the Alerts page, the
// runbook, and silences.
type alertView struct {
	e   *alert.Evaluator
	cfg config.Alerts
}

func (v alertView) views(list []store.Alert) []web.Alert {
	out := make([]web.Alert, 0, len(list))
	for _, a := range list {
		out = append(out, web.AlertOf(a, v.e.RunbookOf(a.Rule)))
	}
	return out
}

func (v alertView) Firing(context.Context) ([]web.Alert, error) { return v.views(v.e.Firing()), nil }
func (v alertView) Active(context.Context) ([]web.Alert, error) { return v.views(v.e.Active()), nil }

func (v alertView) History(ctx context.Context, limit int) ([]web.Alert, error) {
	list, err := v.e.History(ctx, store.AlertQuery{Limit: limit})
	return v.views(list), err
}

func (v alertView) Notifiers() []web.NotifierStatus {
	var out []web.NotifierStatus
	for _, h := range v.e.Notifiers() {
		out = append(out, web.NotifierStatus{Name: h.Name, Kind: h.Kind, Healthy: h.Healthy(), LastSuccess: h.LastSuccess,
			LastError: h.LastError, Failures: h.Failures, GivenUp: h.GivenUp, NextAttempt: h.NextAttempt})
	}
	return out
}

func (v alertView) Runbook() []web.RunbookEntry {
	var out []web.RunbookEntry
	for _, d := range alert.Runbook() {
		r, _ := v.cfg.Rules.Rule(d.Name)
		out = append(out, web.RunbookEntry{Name: d.Name, Severity: r.Severity, Enabled: r.Enabled, Meaning: d.Meaning, Action: d.Action})
	}
	return out
}

func (v alertView) List(ctx context.Context, all bool) ([]store.Silence, error) {
	return v.e.Silences(ctx, all, 0)
}
func (v alertView) Add(ctx context.Context, s store.Silence) (store.Silence, error) {
	return v.e.AddSilence(ctx, s)
}
func (v alertView) Expire(ctx context.Context, id int64, actor string) (store.Silence, error) {
	return v.e.ExpireSilence(ctx, id, actor)
}
