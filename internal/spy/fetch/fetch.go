package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// Timeout bounds one request, body included (default 30 s).
	Timeout time.Duration
	// MaxBytes bounds a reply's body (default DefaultMaxBytes).
	MaxBytes int64
	// UserAgent names Spy Agency to the source's operators (default "spyagency").
	UserAgent string
	// Token, when set, gives a bearer token for each request (OMS behind CERN SSO).
	Token func() (string, error)
	// HTTP is the client to send with; default a client with its own transport and no overall timeout
	// (the per-request context carries it).
	HTTP *http.Client
}

// Client fetches JSON over HTTP.
type Client struct {
	opts Options
	http *http.Client
}

// New makes a Client.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.UserAgent == "" {
		o.UserAgent = "spyagency"
	}
	hc := o.HTTP
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // the CMS services are reached directly; a stray proxy variable must not reroute them
		hc = &http.Client{Transport: tr}
	}
	return &Client{opts: o, http: hc}
}

// MaxBytes is the body limit the client enforces.
func (c *Client) MaxBytes() int64 { return c.opts.MaxBytes }

// Meta is what a reply said about itself besides its body.
type Meta struct {
	URL     string
	Status  int
	Date    time.Time // the server's Date header, zero if absent
	Expires time.Time // the Expires header, zero if absent
	// MaxAge is how long the reply stays fresh: Cache-Control max-age, else Expires minus Date; zero when
	// the reply may not be cached or says nothing. Tier-0 caches its replies for 5 minutes.
	MaxAge time.Duration
}

// GetJSON sends GET url with Accept: application/json and decodes the JSON reply into into. Every error
// is an *Error naming the URL.
func (c *Client) GetJSON(ctx context.Context, url string, into any) (Meta, error) {
	meta := Meta{URL: url}
	rctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return meta, &Error{URL: url, Kind: KindRequest, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if c.opts.Token != nil {
		tok, err := c.opts.Token()
		if err != nil {
			return meta, &Error{URL: url, Kind: KindAuth, Err: fmt.Errorf("getting a token: %w", err)}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return meta, c.transportError(ctx, rctx, url, 0, err)
	}
	defer resp.Body.Close()
	meta.Status = resp.StatusCode
	meta.Date, meta.Expires, meta.MaxAge = cacheInfo(resp.Header)

	ctype := resp.Header.Get("Content-Type")
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return meta, statusError(url, resp, ctype)
	}
	if resp.ContentLength > c.opts.MaxBytes {
		return meta, &Error{URL: url, Status: resp.StatusCode, Kind: KindTooLarge,
			Err: fmt.Errorf("%w: Content-Length %d exceeds the limit of %d", ErrTooLarge, resp.ContentLength, c.opts.MaxBytes)}
	}
	if err := checkJSONType(ctype); err != nil {
		return meta, &Error{URL: url, Status: resp.StatusCode, Kind: kindOfTypeError(ctype), Err: err,
			Snippet: snippet(resp.Body)}
	}
	if err := DecodeJSON(resp.Body, c.opts.MaxBytes, into); err != nil {
		switch {
		case errors.Is(err, ErrTooLarge):
			return meta, &Error{URL: url, Status: resp.StatusCode, Kind: KindTooLarge, Err: err}
		case errors.Is(err, ErrDecode):
			return meta, &Error{URL: url, Status: resp.StatusCode, Kind: KindDecode, Err: err}
		}
		return meta, c.transportError(ctx, rctx, url, resp.StatusCode, err)
	}
	return meta, nil
}

// transportError classifies a failure to get or read a reply: the caller's cancellation, our own
// per-request timeout, or a network failure.
func (c *Client) transportError(parent, rctx context.Context, url string, status int, err error) error {
	switch {
	case parent.Err() != nil:
		return &Error{URL: url, Status: status, Kind: KindCanceled, Err: fmt.Errorf("%w (%v)", parent.Err(), err)}
	case rctx.Err() != nil:
		return &Error{URL: url, Status: status, Kind: KindTimeout, Err: fmt.Errorf("no complete answer within %s: %w", c.opts.Timeout, err)}
	}
	return &Error{URL: url, Status: status, Kind: KindNetwork, Err: err}
}

func statusError(url string, resp *http.Response, ctype string) error {
	e := &Error{URL: url, Status: resp.StatusCode, Kind: KindStatus, Snippet: snippet(resp.Body)}
	if isHTML(ctype, e.Snippet) {
		e.Err = fmt.Errorf("HTTP %d, answered HTML, not JSON", resp.StatusCode)
	} else {
		e.Err = fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return e
}

// checkJSONType accepts application/json, text/json and any +json type; a missing type is tolerated
// (decoding will tell), HTML is named as such because it is what a proxy or an SSO login page answers.
func checkJSONType(ctype string) error {
	if ctype == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ctype)
	if err != nil {
		return fmt.Errorf("unreadable Content-Type %q: %w", ctype, err)
	}
	switch {
	case mt == "application/json", mt == "text/json", strings.HasSuffix(mt, "+json"):
		return nil
	case mt == "text/html", mt == "application/xhtml+xml":
		return errors.New("answered HTML, not JSON")
	}
	return fmt.Errorf("Content-Type %q is not JSON", mt)
}

func kindOfTypeError(ctype string) Kind {
	if strings.Contains(ctype, "html") {
		return KindHTML
	}
	return KindContentType
}

var titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

func isHTML(ctype, body string) bool {
	if strings.Contains(ctype, "html") {
		return true
	}
	b := strings.ToLower(strings.TrimSpace(body))
	return strings.HasPrefix(b, "<!doctype html") || strings.HasPrefix(b, "<html")
}

// snippet reads the start of a body for an error message: at most 512 bytes, whitespace collapsed, the
// HTML title preferred, cut to 200 characters.
func snippet(r io.Reader) string {
	buf, _ := io.ReadAll(io.LimitReader(r, 512))
	buf = bytes.ToValidUTF8(buf, []byte("?"))
	s := string(buf)
	if m := titleRE.FindStringSubmatch(s); m != nil {
		s = "title: " + m[1]
	}
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:200]) + "…"
	}
	return s
}

// cacheInfo reads Date, Expires and Cache-Control. max-age wins over Expires, as in HTTP caching.
func cacheInfo(h http.Header) (date, expires time.Time, maxAge time.Duration) {
	date, _ = http.ParseTime(h.Get("Date"))
	expires, _ = http.ParseTime(h.Get("Expires"))
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return date, expires, 0
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.ParseInt(strings.TrimPrefix(d, "max-age="), 10, 64); err == nil && n > 0 {
				return date, expires, time.Duration(n) * time.Second
			}
		}
	}
	if !date.IsZero() && expires.After(date) {
		maxAge = expires.Sub(date)
	}
	return date, expires, maxAge
}
