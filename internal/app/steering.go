package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/metrics"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
)

// pushers builds one pusher per configured push target. SQL targets on SQLite get their table made
// (a simulated or local Tier-0 database); on PostgreSQL the table is Tier-0's and is only checked.
func buildPushers(ctx context.Context, cfg *config.Config, st store.Store, clk clock.Clock, gate func(context.Context) error, ev *metrics.Events, log *slog.Logger) ([]*steer.Pusher, []func() error, error) {
	var out []*steer.Pusher
	var closers []func() error
	fail := func(err error) ([]*steer.Pusher, []func() error, error) {
		for _, c := range closers {
			_ = c()
		}
		return nil, nil, err
	}
	for i, t := range cfg.Steering.Targets {
		var target steer.Target
		switch t.Type {
		case "webhook":
			secret, err := t.Secret(os.LookupEnv)
			if err != nil {
				return fail(err)
			}
			w, err := steer.NewWebhook(steer.WebhookOptions{Name: t.Name, URL: t.URL, Secret: secret, Timeout: t.Timeout, Clock: clk})
			if err != nil {
				return fail(fmt.Errorf("steering target %s: %w", t.Name, err))
			}
			target = w
		case "sql":
			dsn, err := t.ConnString(os.LookupEnv)
			if err != nil {
				return fail(err)
			}
			s, err := steer.OpenSQLTarget(t.Name, dsn, t.Table)
			if err != nil {
				return fail(fmt.Errorf("steering target %s: %w", t.Name, err))
			}
			closers = append(closers, s.Close)
			if strings.HasPrefix(dsn, "sqlite:") {
				err = s.CreateTable(ctx)
			} else {
				err = s.Check(ctx)
			}
			if err != nil {
				// Deliveries are retried until the table exists; say so now rather than at the first decision.
				log.Warn("steering target not usable yet; deliveries will be retried", "target", t.Name, "err", err)
			}
			target = s
		default:
			return fail(fmt.Errorf("steering target %s: unknown type %q", t.Name, t.Type))
		}
		// The pusher names its target in every line, and logs a dead letter once itself.
		p, err := steer.NewPusher(steer.PusherOptions{Outbox: st, Target: target, Clock: clk, Logger: log, Seed: uint64(i + 1),
			MaxAttempts: t.MaxAttempts, AttemptTimeout: t.Timeout, Gate: gate, OnDelivered: ev.Delivered})
		if err != nil {
			return fail(fmt.Errorf("steering target %s: %w", t.Name, err))
		}
		out = append(out, p)
	}
	return out, closers, nil
}

func targetNames(cfg *config.Config) []string {
	var names []string
	for _, t := range cfg.Steering.Targets {
		names = append(names, t.Name)
	}
	return names
}
