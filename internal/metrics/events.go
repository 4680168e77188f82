package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// latencyBuckets span what PCL latencies are: seconds for a poll, hours for a harvest, two days for
// Tier-0's own lock.
var latencyBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 16 * 3600, 32 * 3600, 48 * 3600}

// Events counts what happens between scrapes: observations detected and decisions taken.
type Events struct {
	detection *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	decision  prometheus.Histogram
	delivery  *prometheus.HistogramVec
}

// NewEvents registers the event metrics on reg.
func NewEvents(reg prometheus.Registerer) (*Events, error) {
	e := &Events{
		detection: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spyagency_detection_latency_seconds",
			Help:    "From the moment a source says a fact happened to the moment a spy stored it, by source.",
			Buckets: latencyBuckets}, []string{"source"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spyagency_decisions_total",
			Help: "New decisions (readiness versions) taken, by the readiness decided."}, []string{"readiness"}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "spyagency_decision_latency_seconds",
			Help:    "From the newest workflow change a decision rests on (by its evidence's time) to the decision.",
			Buckets: latencyBuckets}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spyagency_delivery_latency_seconds",
			Help:    "From a decision's entry in the outbox to its recorded delivery to the push target, retries included, by target.",
			Buckets: latencyBuckets}, []string{"target"}),
	}
	for _, c := range []prometheus.Collector{e.detection, e.decisions, e.decision, e.delivery} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Detected records a poll's stored observations: each one's delay from its source time (At) to when
// the spy saw it (Seen). Observations without both times are not counted.
func (e *Events) Detected(src pcl.Source, obs []pcl.Observation) {
	if e == nil || len(obs) == 0 {
		return
	}
	h := e.detection.WithLabelValues(string(src))
	for _, o := range obs {
		if o.At.IsZero() || o.Seen.IsZero() {
			continue
		}
		h.Observe(max(0, o.Seen.Sub(o.At).Seconds()))
	}
}

// Decided records a new decision of a run: its readiness, and its delay from the newest workflow
// change it rests on.
func (e *Events) Decided(rs pcl.RunState) {
	if e == nil {
		return
	}
	e.decisions.WithLabelValues(string(rs.Decision.State)).Inc()
	var newest time.Time
	for _, w := range rs.Workflows {
		if w.Updated.After(newest) {
			newest = w.Updated
		}
	}
	if !newest.IsZero() && !rs.Decision.Decided.IsZero() {
		e.decision.Observe(max(0, rs.Decision.Decided.Sub(newest).Seconds()))
	}
}

// Delivered records a decision delivered to a push target: its delay from the outbox entry's creation
// to the delivery recorded at at. Entries without a creation time are not counted.
func (e *Events) Delivered(entry store.OutboxEntry, at time.Time) {
	if e == nil || entry.Created.IsZero() {
		return
	}
	e.delivery.WithLabelValues(entry.Target).Observe(max(0, at.Sub(entry.Created).Seconds()))
}
