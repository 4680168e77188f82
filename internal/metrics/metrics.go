// Package metrics exposes Spy Agency to Prometheus, every name prefixed spyagency_. Two kinds live here:
//
//   - What the process already knows is read at scrape time by a Collector: each source's health, lag
//     and poll counts, the runs by readiness and the workflows by state (from the open runs), each push
//     target's outbox depth and the age of its oldest pending entry, the alerts by state. Nothing is
//     copied into gauges that could drift from the truth, and a scrape costs what one look at each part
//     costs.
//   - What happens between scrapes is counted as it happens: HTTP requests by route pattern and status
//     (Requests, fed by the web server), decisions by readiness and their latency from the evidence
//     they rest on, deliveries' latency per push target (Events, fed by the agency and the pushers).
//   - The store's operations are timed, and their errors counted by kind, by a decorator around the
//     store that every part of the process uses (StoreTimings, store.go).
//
// The registry is the caller's (internal/app makes one per process, never the global one), so that two
// processes in one test binary do not share counters.
package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// SourceCount is what a spy's runner counted since the process started.
type SourceCount struct {
	Source       pcl.Source
	Polls        uint64        // polls made, good and bad
	Failed       uint64        // polls that failed
	Observations uint64        // observations stored
	LastPoll     time.Duration // wall time of the last poll
}

// Parts are what the collector reads at scrape time; a nil part is left out.
type Parts struct {
	Health func() []pcl.SourceHealth
	Counts func() []SourceCount
	// Runs are the open runs' states (the agency's open work).
	Runs func(ctx context.Context) ([]pcl.RunState, error)
	// FirstUnready is the run Tier-0's pull API names: every run below it may be released.
	FirstUnready func(ctx context.Context) (uint32, error)
	// Pending lists a push target's entries neither delivered nor dead, oldest first, up to limit.
	Pending func(ctx context.Context, target string, limit int) ([]store.OutboxEntry, error)
	Targets []string
	Alerts  func() []store.Alert
	// Now is the agency's clock (ages are on it); default time.Now.
	Now func() time.Time
	// Timeout bounds the store reads of one scrape (default 5 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// maxPending bounds how many pending outbox entries a scrape counts per target; a deeper queue reads
// as this many (and the age of its oldest entry is still exact).
const maxPending = 10000

// Collector is a prometheus.Collector over Parts.
type Collector struct {
	p Parts

	sourceUp, sourceStale, sourceLag, sourceFailures *prometheus.Desc
	polls, pollErrors, observations, pollSeconds     *prometheus.Desc
	runs, workflows, runsUp                          *prometheus.Desc
	outboxDepth, outboxOldest                        *prometheus.Desc
	alerts, scrapeErrors                             *prometheus.Desc
}

// NewCollector makes the collector of parts.
func NewCollector(p Parts) *Collector {
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Timeout <= 0 {
		p.Timeout = 5 * time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	src := []string{"source"}
	return &Collector{p: p,
		sourceUp:       prometheus.NewDesc("spyagency_source_healthy", "1 when the source's last poll succeeded.", src, nil),
		sourceStale:    prometheus.NewDesc("spyagency_source_stale", "1 when the source is stale: nothing is concluded from its absence.", src, nil),
		sourceLag:      prometheus.NewDesc("spyagency_source_lag_seconds", "Seconds since the source's last good poll, on the agency's clock.", src, nil),
		sourceFailures: prometheus.NewDesc("spyagency_source_consecutive_failures", "Failed polls in a row.", src, nil),
		polls:          prometheus.NewDesc("spyagency_source_polls_total", "Polls made since the process started.", src, nil),
		pollErrors:     prometheus.NewDesc("spyagency_source_poll_errors_total", "Polls that failed since the process started.", src, nil),
		observations:   prometheus.NewDesc("spyagency_observations_ingested_total", "Observations stored from the source since the process started.", src, nil),
		pollSeconds:    prometheus.NewDesc("spyagency_source_last_poll_duration_seconds", "Wall time of the source's last poll.", src, nil),
		runs:           prometheus.NewDesc("spyagency_runs", "Open runs by readiness.", []string{"readiness"}, nil),
		workflows:      prometheus.NewDesc("spyagency_workflows", "Workflows of open runs by state.", []string{"state"}, nil),
		runsUp:         prometheus.NewDesc("spyagency_first_unready_run", "The run Tier-0 is told: every run below it may be released.", nil, nil),
		outboxDepth:    prometheus.NewDesc("spyagency_outbox_pending", "Decisions waiting to be pushed to the target.", []string{"target"}, nil),
		outboxOldest:   prometheus.NewDesc("spyagency_outbox_oldest_pending_seconds", "Age of the oldest decision waiting for the target (0: none).", []string{"target"}, nil),
		alerts:         prometheus.NewDesc("spyagency_alerts", "Alerts not resolved, by state and severity.", []string{"state", "severity"}, nil),
		scrapeErrors:   prometheus.NewDesc("spyagency_scrape_errors", "Parts that could not be read in this scrape.", []string{"part"}, nil),
	}
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sourceUp, c.sourceStale, c.sourceLag, c.sourceFailures, c.polls, c.pollErrors,
		c.observations, c.pollSeconds, c.runs, c.workflows, c.runsUp, c.outboxDepth, c.outboxOldest, c.alerts, c.scrapeErrors} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect reads every part once.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.p.Timeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	failed := func(part string, err error) {
		c.p.Logger.Warn("metrics: a part could not be read", "part", part, "err", err)
		gauge(c.scrapeErrors, 1, part)
	}
	if c.p.Health != nil {
		for _, h := range c.p.Health() {
			s := string(h.Name)
			gauge(c.sourceUp, b2f(h.Healthy), s)
			gauge(c.sourceStale, b2f(h.Stale), s)
			gauge(c.sourceLag, h.LagSeconds, s)
			gauge(c.sourceFailures, float64(h.Failures), s)
		}
	}
	if c.p.Counts != nil {
		for _, n := range c.p.Counts() {
			s := string(n.Source)
			ch <- prometheus.MustNewConstMetric(c.polls, prometheus.CounterValue, float64(n.Polls), s)
			ch <- prometheus.MustNewConstMetric(c.pollErrors, prometheus.CounterValue, float64(n.Failed), s)
			ch <- prometheus.MustNewConstMetric(c.observations, prometheus.CounterValue, float64(n.Observations), s)
			gauge(c.pollSeconds, n.LastPoll.Seconds(), s)
		}
	}
	if c.p.Runs != nil {
		if states, err := c.p.Runs(ctx); err != nil {
			failed("runs", err)
		} else {
			c.collectRuns(states, gauge)
		}
	}
	if c.p.FirstUnready != nil {
		if n, err := c.p.FirstUnready(ctx); err != nil {
			failed("first-unready", err)
		} else {
			gauge(c.runsUp, float64(n))
		}
	}
	now := c.p.Now()
	if c.p.Pending != nil {
		for _, t := range c.p.Targets {
			entries, err := c.p.Pending(ctx, t, maxPending)
			if err != nil {
				failed("outbox", err)
				break
			}
			gauge(c.outboxDepth, float64(len(entries)), t)
			oldest := 0.0
			if len(entries) > 0 {
				first := entries[0].Created
				for _, e := range entries {
					if e.Created.Before(first) {
						first = e.Created
					}
				}
				oldest = max(0, now.Sub(first).Seconds())
			}
			gauge(c.outboxOldest, oldest, t)
		}
	}
	if c.p.Alerts != nil {
		type key struct{ state, severity string }
		counts := map[key]int{}
		for _, sev := range []string{"critical", "warning", "info"} {
			for _, st := range []string{store.AlertPending, store.AlertFiring} {
				counts[key{st, sev}] = 0
			}
		}
		for _, a := range c.p.Alerts() {
			counts[key{a.State, a.Severity}]++
		}
		for k, n := range counts {
			gauge(c.alerts, float64(n), k.state, k.severity)
		}
	}
}

func (c *Collector) collectRuns(states []pcl.RunState, gauge func(*prometheus.Desc, float64, ...string)) {
	byReadiness := map[pcl.Readiness]int{}
	for _, r := range pcl.Readinesses {
		byReadiness[r] = 0
	}
	byState := map[pcl.State]int{}
	for _, s := range pcl.States {
		byState[s] = 0
	}
	for _, rs := range states {
		byReadiness[rs.Decision.State]++
		for _, w := range rs.Workflows {
			byState[w.State]++
		}
	}
	for r, n := range byReadiness {
		gauge(c.runs, float64(n), string(r))
	}
	for s, n := range byState {
		gauge(c.workflows, float64(n), string(s))
	}
}

// Requests counts HTTP requests by route pattern and status, and times them. The web server calls
// Observe once per request, with the pattern the request matched ("unmatched" for none).
type Requests struct {
	count *prometheus.CounterVec
	dur   *prometheus.HistogramVec
}

// NewRequests registers the request metrics on reg.
func NewRequests(reg prometheus.Registerer) (*Requests, error) {
	r := &Requests{
		count: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spyagency_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code."}, []string{"route", "code"}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spyagency_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern (the event stream counts its whole life).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{r.count, r.dur} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ObserveRequest records one answered request.
func (r *Requests) ObserveRequest(route string, code int, d time.Duration) {
	r.count.WithLabelValues(route, strconv.Itoa(code)).Inc()
	r.dur.WithLabelValues(route).Observe(d.Seconds())
}
