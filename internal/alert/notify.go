package alert

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Notifier tells people about alerts: Alertmanager, a webhook, e-mail. It returns whether a failure is
// worth retrying (the receiver was unreachable, busy or failed inside) or not (it refused the message):
// the dispatcher retries the first kind with backoff for the notifier's retry window and gives the
// second up at once.
type Notifier interface {
	Notify(ctx context.Context, m Message) (retry bool, err error)
}

// Message is one group of alerts for one notifier.
type Message struct {
	// Receiver is the notifier's name.
	Receiver string
	// GroupKey identifies the group (its rule and the values of its group_by labels); GroupLabels are
	// those labels.
	GroupKey    string
	GroupLabels map[string]string
	Alerts      []Notice
	// ExternalURL is the dashboard's address; links start with it.
	ExternalURL string
}

// Status is "firing" when any alert of the message fires, else "resolved".
func (m Message) Status() string {
	for _, n := range m.Alerts {
		if n.Status == "firing" {
			return "firing"
		}
	}
	return "resolved"
}

// Notice is one alert as notifiers carry it, in Alertmanager's terms.
type Notice struct {
	Status      string            `json:"status"` // firing or resolved
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	// EndsAt is the resolution; for a firing alert sent to Alertmanager, when it is to be considered
	// resolved if nobody posts it again.
	EndsAt       time.Time `json:"endsAt,omitzero"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

// NamedNotifier is a notifier with its settings.
type NamedNotifier struct {
	Name, Kind string // kind: alertmanager, webhook or email
	Notifier   Notifier
	// RetryFor bounds the retries of a notice; Resend, when set, posts the firing alerts again that
	// often (Alertmanager forgets what nobody re-posts; it deduplicates what it gets twice).
	RetryFor, Resend time.Duration
}

// NotifierHealth is a notifier's state as the page and the notifier-failing rule see it. Times are
// wall times: a delivery is I/O.
type NotifierHealth struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Failures counts the deliveries that failed in a row; FailingSince is when the first of them did.
	Failures     int       `json:"failures"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	// GivenUp counts the notices given up since the process started.
	GivenUp int `json:"given_up"`
	// NextAttempt is when a delivery is tried again after a failure worth retrying.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Healthy says the last delivery got through (or none was tried).
func (h NotifierHealth) Healthy() bool { return h.Failures == 0 }

// backoff is the wait before the n-th retry (n ≥ 1): 1 s doubling to at most 5 min.
func backoff(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// httpVerdict classifies an HTTP exchange the way every HTTP notifier does: no answer, a 5xx or a 429
// is worth retrying; any other status outside 2xx is a refusal.
func httpVerdict(resp *http.Response, err error, what string) (retry bool, _ error) {
	if err != nil {
		// No answer at all (refused, reset, timed out): the receiver is away, not refusing.
		return true, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout
	return retry, fmt.Errorf("%s: HTTP %s", what, resp.Status)
}

// groupKey is the group an alert's notices go out in: its rule and its group_by labels' values.
func groupKey(rule string, groupBy []string, labels map[string]string) (string, map[string]string) {
	gl := map[string]string{}
	parts := []string{rule}
	by := slices.Clone(groupBy)
	sort.Strings(by)
	for _, l := range by {
		v := labels[l]
		if l == "alertname" {
			v = rule
		}
		gl[l] = v
		if l != "alertname" {
			parts = append(parts, l+"="+v)
		}
	}
	return strings.Join(parts, "/"), gl
}
