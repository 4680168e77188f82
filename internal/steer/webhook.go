package steer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Webhook headers.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderSignature      = "X-Spyagency-Signature"
	HeaderTimestamp      = "X-Spyagency-Timestamp"
)

// WebhookBody is the JSON a webhook receives: one decision for one run.
type WebhookBody struct {
	Run   uint32        `json:"run"`
	State pcl.Readiness `json:"state"`
	// Ready is the run's own releasability. Unlike ready_runs it does not look at earlier runs: Tier-0
	// releases in run order itself, and a push for a later run must not have to wait for an earlier one.
	Ready    bool      `json:"ready"`
	Version  int64     `json:"version"`
	Reason   string    `json:"reason"`
	Blocking []string  `json:"blocking"`
	Decided  time.Time `json:"decided"`
}

// NewWebhookBody is the body for a decision.
func NewWebhookBody(d pcl.Decision) WebhookBody {
	b := WebhookBody{Run: d.Run, State: d.State, Ready: d.Releasable, Version: d.Version, Reason: d.Reason,
		Blocking: d.Blocking, Decided: d.Decided.UTC()}
	if b.Blocking == nil {
		b.Blocking = []string{}
	}
	return b
}

// Sign is the signature header value for a body: "sha256=" and the hex HMAC-SHA256 of the body bytes
// exactly as sent, keyed with the shared secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature says whether header is the signature of body under secret. It compares in constant time,
// accepts the hex digits in either case, and refuses an empty secret (which anybody could sign with).
func VerifySignature(secret, body []byte, header string) bool {
	if len(secret) == 0 {
		return false
	}
	h := strings.TrimSpace(header)
	if len(h) < len("sha256=") || !strings.EqualFold(h[:len("sha256=")], "sha256=") {
		return false
	}
	got, err := hex.DecodeString(h[len("sha256="):])
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// WebhookOptions configures a Webhook.
type WebhookOptions struct {
	Name string // the outbox target name
	URL  string // http or https
	// Secret is the shared HMAC key, read by the caller from a file or the environment; never empty.
	Secret []byte
	// Timeout bounds one request, reply included. Default 10 s.
	Timeout time.Duration
	// MaxResponse is how much of a reply is read: the receiver's answer is only a status. Default 64 KiB.
	MaxResponse int64
	// Client, if set, replaces the default transport (custom TLS roots). It should not follow redirects:
	// the default does not, since a redirected POST would lose its body or be resent somewhere nobody
	// configured.
	Client *http.Client
	// Clock stamps X-Spyagency-Timestamp. Default the wall clock.
	Clock clock.Clock
}

// Webhook POSTs each decision as signed JSON.
type Webhook struct {
	o    WebhookOptions
	url  string
	http *httpx.Client
}

// NewWebhook checks the options.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	if strings.TrimSpace(o.Name) == "" {
		return nil, errors.New("steer: webhook target has no name")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("steer: webhook %s: url %q: %w", o.Name, o.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("steer: webhook %s: url %q: want http://HOST/... or https://HOST/...", o.Name, o.URL)
	}
	if len(o.Secret) == 0 {
		return nil, fmt.Errorf("steer: webhook %s: no shared secret: every delivery must be signed", o.Name)
	}
	setDefault(&o.Timeout, 10*time.Second)
	if o.MaxResponse <= 0 {
		o.MaxResponse = 64 << 10
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	hc := httpx.New(httpx.Options{Timeout: o.Timeout, MaxBytes: o.MaxResponse, UserAgent: "spyagency-steer",
		HTTP: o.Client, Now: o.Clock.Now})
	return &Webhook{o: o, url: u.String(), http: hc}, nil
}

// Name is the outbox target name.
func (w *Webhook) Name() string { return w.o.Name }

// Deliver POSTs one decision. 2xx is delivered; 408, 425, 429 and 5xx, timeouts and connection errors are
// worth retrying; any other status (4xx: the receiver refuses this request as it is; 3xx: the URL is
// wrong) is permanent.
func (w *Webhook) Deliver(ctx context.Context, d Delivery) error {
	body, err := json.Marshal(NewWebhookBody(d.Decision))
	if err != nil {
		return Permanent(fmt.Errorf("encode webhook body: %w", err))
	}
	key := d.Key
	if key == "" {
		key = IdempotencyKey(d.Decision.Run, d.Decision.Version)
	}
	h := http.Header{}
	h.Set(HeaderIdempotencyKey, key)
	h.Set(HeaderSignature, Sign(w.o.Secret, body))
	h.Set(HeaderTimestamp, w.o.Clock.Now().UTC().Format(time.RFC3339))
	// The receiver's answer is only a status: its body is read (bounded) and dropped.
	_, err = w.http.Send(ctx, httpx.Request{Method: http.MethodPost, URL: w.url, Body: body, Header: h}, nil)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("webhook %s: %w", w.o.Name, err)
	var he *httpx.Error
	switch {
	case !errors.As(err, &he):
	case he.Kind == httpx.KindRequest:
		return Permanent(err)
	case he.Kind == httpx.KindStatus && he.Retryable():
		return &DeliveryError{Err: err, RetryAfter: he.RetryAfter}
	case he.Kind == httpx.KindStatus:
		// 4xx: the receiver refuses this request as it is; 3xx: the URL is wrong.
		return Permanent(err)
	}
	// Timeouts, refused connections, a cancelled delivery: worth trying again.
	return err
}
