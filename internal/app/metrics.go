package app

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cms-pcl/spyagency/internal/metrics"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// farFuture makes PendingOutbox list every entry of a target not delivered nor dead, due or not.
const farFuture = 50 * 365 * 24 * time.Hour

// processMetrics is the process's own Prometheus registry (never the global one) and what feeds it
// between scrapes.
type processMetrics struct {
	reg      *prometheus.Registry
	events   *metrics.Events
	requests *metrics.Requests
	store    *metrics.StoreTimings
}

func newProcessMetrics() (*processMetrics, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	events, err := metrics.NewEvents(reg)
	if err != nil {
		return nil, err
	}
	requests, err := metrics.NewRequests(reg)
	if err != nil {
		return nil, err
	}
	timings, err := metrics.NewStoreTimings(reg)
	if err != nil {
		return nil, err
	}
	return &processMetrics{reg: reg, events: events, requests: requests, store: timings}, nil
}

// countLate exports the store's count of facts of compacted runs that it turned away (store.LateCounter),
// when the store keeps one.
func (m *processMetrics) countLate(st store.Store) error {
	lc, ok := st.(store.LateCounter)
	if !ok {
		return nil
	}
	return m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spyagency_late_observations_total",
		Help: "Distinct facts delivered for runs whose raw observations were compacted: counted in the run's compaction, not stored (since this process started)."},
		func() float64 { return float64(lc.LateObservations()) }))
}

// collect registers the collector that reads the app's parts at scrape time. It is called once the
// parts exist.
func (m *processMetrics) collect(a *App, st store.Store, targets []string, first firstUnready) error {
	return m.reg.Register(metrics.NewCollector(metrics.Parts{
		Health: a.spies.SourceHealth,
		Counts: func() []metrics.SourceCount {
			out := make([]metrics.SourceCount, 0, len(a.spies.runners))
			for _, r := range a.spies.runners {
				n := r.Counts()
				out = append(out, metrics.SourceCount{Source: pcl.Source(r.Name()), Polls: n.Polls, Failed: n.Failed,
					Observations: n.Observations, LastPoll: n.LastPoll})
			}
			return out
		},
		Runs:         a.Agency.OpenRunStates,
		FirstUnready: first.FirstUnready,
		Pending: func(ctx context.Context, target string, limit int) ([]store.OutboxEntry, error) {
			return st.PendingOutbox(ctx, target, a.o.Clock.Now().Add(farFuture), limit)
		},
		Targets: targets,
		Alerts:  a.Alerts.Active,
		Now:     a.o.Clock.Now,
		Logger:  a.log.With("part", "metrics"),
	}))
}

func (m *processMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second})
}

// detectedSink stores a poll's observations and counts their detection latency.
func detectedSink(ingest func(context.Context, pcl.Source, []pcl.Observation) error, ev *metrics.Events) func(context.Context, pcl.Source, []pcl.Observation) error {
	return func(ctx context.Context, src pcl.Source, obs []pcl.Observation) error {
		if err := ingest(ctx, src, obs); err != nil {
			return err
		}
		ev.Detected(src, obs)
		return nil
	}
}
