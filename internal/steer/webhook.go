package steer

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/redact"
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
	// Client, if set, replaces the default client (tests, custom TLS roots). It should not follow
	// redirects: the default client does not, since a redirected POST would lose its body or be resent
	// somewhere nobody configured.
	Client *http.Client
	// Clock stamps X-Spyagency-Timestamp. Default the wall clock.
	Clock clock.Clock
}

// Webhook POSTs each decision as signed JSON.
type Webhook struct {
	o   WebhookOptions
	url string
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
	if o.Client == nil {
		o.Client = &http.Client{
			Timeout:       o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Webhook{o: o, url: u.String()}, nil
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
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook %s: %w", w.o.Name, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "spyagency-steer")
	key := d.Key
	if key == "" {
		key = IdempotencyKey(d.Decision.Run, d.Decision.Version)
	}
	req.Header.Set(HeaderIdempotencyKey, key)
	req.Header.Set(HeaderSignature, Sign(w.o.Secret, body))
	req.Header.Set(HeaderTimestamp, w.o.Clock.Now().UTC().Format(time.RFC3339))
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: POST %s: %w", w.o.Name, redact.URL(w.url), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// Read what is left up to the limit so the connection can be reused; a bigger reply is cut off.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, w.o.MaxResponse))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("webhook %s: POST %s: %s: %s", w.o.Name, redact.URL(w.url), resp.Status, printable(snippet))
	switch {
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode == http.StatusTooEarly, resp.StatusCode == http.StatusTooManyRequests:
		return &DeliveryError{Err: err, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), w.o.Clock.Now())}
	}
	return Permanent(err)
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// printable keeps a reply snippet fit for a log line.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, string(b))
	return strings.TrimSpace(s)
}
