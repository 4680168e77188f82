package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Alertmanager and webhook notifiers post JSON; one helper does it for both, with the notifier's
// timeout, a bearer token when one is configured, and the verdict of httpVerdict.

type jsonPoster struct {
	client *http.Client
	url    string
	token  string
	what   string // for errors: "alertmanager am1"
}

func newPoster(url, token string, timeout time.Duration, what string) jsonPoster {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return jsonPoster{client: &http.Client{Timeout: timeout}, url: url, token: token, what: what}
}

func (p jsonPoster) post(ctx context.Context, v any) (retry bool, err error) {
	body, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("%s: encode: %w", p.what, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.what, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "spyagency-alerts")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return httpVerdict(nil, err, p.what)
	}
	defer resp.Body.Close()
	// A little of the reply says why it refused; the rest is drained so the connection can be reused.
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	retry, err = httpVerdict(resp, nil, p.what)
	if err != nil && len(bytes.TrimSpace(reply)) > 0 {
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(reply))
	}
	return retry, err
}

// AlertmanagerNotifier posts alerts to Alertmanager's API v2 (POST /api/v2/alerts). Alertmanager groups,
// routes, deduplicates and repeats them by its own configuration; firing alerts carry an endsAt a few
// resend intervals ahead, so that Alertmanager resolves them by itself should this process stop posting.
type AlertmanagerNotifier struct{ p jsonPoster }

// NewAlertmanager posts to base + /api/v2/alerts.
func NewAlertmanager(name, base, token string, timeout time.Duration) *AlertmanagerNotifier {
	return &AlertmanagerNotifier{p: newPoster(trimSlash(base)+"/api/v2/alerts", token, timeout, "alertmanager "+name)}
}

// postableAlert is Alertmanager's API v2 alert.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Notify posts the message's alerts.
func (a *AlertmanagerNotifier) Notify(ctx context.Context, m Message) (bool, error) {
	list := make([]postableAlert, 0, len(m.Alerts))
	for _, n := range m.Alerts {
		list = append(list, postableAlert{Labels: n.Labels, Annotations: n.Annotations, StartsAt: n.StartsAt.UTC(),
			EndsAt: n.EndsAt.UTC(), GeneratorURL: n.GeneratorURL})
	}
	return a.p.post(ctx, list)
}

// WebhookNotifier posts each group of alerts in Alertmanager's webhook payload shape (version 4), which
// receivers written for Alertmanager already read.
type WebhookNotifier struct{ p jsonPoster }

// NewWebhook posts to url.
func NewWebhook(name, url, token string, timeout time.Duration) *WebhookNotifier {
	return &WebhookNotifier{p: newPoster(url, token, timeout, "webhook "+name)}
}

// WebhookPayload is Alertmanager's webhook payload.
type WebhookPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of the payload; a firing alert's endsAt is the zero time, as Alertmanager
// sends it.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// maxWebhookAlerts bounds one post; the rest are counted in truncatedAlerts, as Alertmanager does.
const maxWebhookAlerts = 200

// Payload is the message in the webhook's shape.
func (m Message) Payload() WebhookPayload {
	p := WebhookPayload{Version: "4", GroupKey: m.GroupKey, Status: m.Status(), Receiver: m.Receiver, GroupLabels: m.GroupLabels,
		CommonLabels:      common(m.Alerts, func(n Notice) map[string]string { return n.Labels }),
		CommonAnnotations: common(m.Alerts, func(n Notice) map[string]string { return n.Annotations }),
		ExternalURL:       m.ExternalURL, Alerts: []WebhookAlert{}}
	for i, n := range m.Alerts {
		if i == maxWebhookAlerts {
			p.TruncatedAlerts = len(m.Alerts) - i
			break
		}
		ends := n.EndsAt
		if n.Status == "firing" {
			ends = time.Time{}
		}
		p.Alerts = append(p.Alerts, WebhookAlert{Status: n.Status, Labels: n.Labels, Annotations: n.Annotations, StartsAt: n.StartsAt.UTC(),
			EndsAt: ends.UTC(), GeneratorURL: n.GeneratorURL, Fingerprint: n.Fingerprint})
	}
	if p.GroupLabels == nil {
		p.GroupLabels = map[string]string{}
	}
	return p
}

// Notify posts the group.
func (w *WebhookNotifier) Notify(ctx context.Context, m Message) (bool, error) {
	return w.p.post(ctx, m.Payload())
}

// common are the pairs every alert has.
func common(alerts []Notice, of func(Notice) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range of(alerts[0]) {
		out[k] = v
	}
	for _, a := range alerts[1:] {
		m := of(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
