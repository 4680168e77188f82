package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cms-pcl/spyagency/internal/redact"
)

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// Timeout bounds one request, body included (default 30 s).
	Timeout time.Duration
	// MaxBytes bounds a reply's body (default DefaultMaxBytes).
	MaxBytes int64
	// UserAgent names Spy Agency to the other side's operators (default "spyagency").
	UserAgent string
	// Token, when set, gives a bearer token for each request (OMS behind CERN SSO, an API token).
	Token func() (string, error)
	// Strict refuses unknown object fields in replies: for the formats Spy Agency defines and reads from
	// itself (its API, its pull API), where an unknown field means the two sides disagree. The CMS
	// sources add fields over time, so their replies are read leniently.
	Strict bool
	// EnvProxy honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY: for the operator's command line, whose user
	// may reach the server through a proxy. The CMS services and push targets are reached directly, and
	// a stray proxy variable must not reroute them.
	EnvProxy bool
	// HTTP is the client to send with; default a client with its own transport, no overall timeout (the
	// per-request context carries it) and redirects followed for GET and HEAD only.
	HTTP *http.Client
	// Now dates a Retry-After given as an HTTP date when the reply has no Date header (default
	// time.Now).
	Now func() time.Time
}

// Client sends requests and reads JSON replies, the same way for every caller: the spies, the simulated
// Tier-0 asking the agency, the webhook push target and the operator's command line.
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
	if o.Now == nil {
		o.Now = time.Now
	}
	hc := o.HTTP
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if !o.EnvProxy {
			tr.Proxy = nil
		}
		hc = &http.Client{Transport: tr, CheckRedirect: readsOnly}
	}
	return &Client{opts: o, http: hc}
}

// readsOnly follows a redirect of a GET or HEAD (at most 10, as net/http does) and of nothing else: a
// redirected POST would lose its body or be sent somewhere nobody configured, so its 3xx is the answer.
func readsOnly(req *http.Request, via []*http.Request) error {
	if m := via[0].Method; m != http.MethodGet && m != http.MethodHead {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// MaxBytes is the body limit the client enforces.
func (c *Client) MaxBytes() int64 { return c.opts.MaxBytes }

// Meta is what a reply said about itself besides its body.
type Meta struct {
	URL     string // without secrets
	Status  int
	Date    time.Time // the server's Date header, zero if absent
	Expires time.Time // the Expires header, zero if absent
	// MaxAge is how long the reply stays fresh: Cache-Control max-age, else Expires minus Date; zero when
	// the reply may not be cached or says nothing. Tier-0 caches its replies for 5 minutes.
	MaxAge time.Duration
}

// Request is one request to send.
type Request struct {
	Method string // default GET
	URL    string
	// Body is sent as application/json unless Header sets another Content-Type.
	Body []byte
	// Header adds headers (a signature, an idempotency key, a fixed bearer token); Accept and User-Agent
	// are the client's, and so is Authorization when its Options have a Token.
	Header http.Header
}

// GetJSON sends GET url with Accept: application/json and decodes the JSON reply into into. Every error
// is an *Error naming the URL.
func (c *Client) GetJSON(ctx context.Context, url string, into any) (Meta, error) {
	return c.Send(ctx, Request{URL: url}, into)
}

// Get GETs url and decodes the reply with decode, the format's own decoder (kept apart from HTTP so that
// it can be fuzzed on bytes). A reply the decoder refuses is an *Error of kind decode naming the URL,
// as the client's own errors do.
func Get[T any](ctx context.Context, c *Client, url string, decode func([]byte) (T, error)) (T, Meta, error) {
	var zero T
	var raw json.RawMessage
	meta, err := c.GetJSON(ctx, url, &raw)
	if err != nil {
		return zero, meta, err
	}
	v, err := decode(raw)
	if err != nil {
		return zero, meta, &Error{Method: http.MethodGet, URL: meta.URL, Status: meta.Status, Kind: KindDecode, Err: err}
	}
	return v, meta, nil
}

// Send sends req. A 2xx reply's body is decoded into into as one JSON value (a *json.RawMessage keeps
// it as it came), or, with into nil, read up to the limit and dropped whatever its type, for callers
// to whom only the status matters. Any other status is an *Error with the start of the body, the
// server's Retry-After and, when the body is Spy Agency's {"error", "code"}, those. Every error is an
// *Error naming the method and the URL without its secrets.
func (c *Client) Send(ctx context.Context, req Request, into any) (Meta, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	url := redact.URL(req.URL)
	meta := Meta{URL: url}
	fail := func(e *Error) error {
		e.Method, e.URL = method, url
		return e
	}
	rctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(rctx, method, req.URL, body)
	if err != nil {
		return meta, fail(&Error{Kind: KindRequest, Err: redact.Error(err)})
	}
	for k, vs := range req.Header {
		hreq.Header[k] = vs
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.opts.UserAgent)
	if req.Body != nil && hreq.Header.Get("Content-Type") == "" {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if c.opts.Token != nil {
		tok, err := c.opts.Token()
		if err != nil {
			return meta, fail(&Error{Kind: KindAuth, Err: fmt.Errorf("getting a token: %w", err)})
		}
		if tok != "" {
			hreq.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return meta, fail(c.transportError(ctx, rctx, 0, err))
	}
	defer resp.Body.Close()
	meta.Status = resp.StatusCode
	meta.Date, meta.Expires, meta.MaxAge = cacheInfo(resp.Header)

	ctype := resp.Header.Get("Content-Type")
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return meta, fail(c.statusError(resp, ctype, meta.Date))
	}
	if into == nil {
		// Read what is left up to the limit so that the connection can be reused; a bigger reply is cut.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.opts.MaxBytes))
		return meta, nil
	}
	if resp.ContentLength > c.opts.MaxBytes {
		return meta, fail(&Error{Status: resp.StatusCode, Kind: KindTooLarge,
			Err: fmt.Errorf("%w: Content-Length %d exceeds the limit of %d", ErrTooLarge, resp.ContentLength, c.opts.MaxBytes)})
	}
	if err := checkJSONType(ctype); err != nil {
		return meta, fail(&Error{Status: resp.StatusCode, Kind: kindOfTypeError(ctype), Err: err,
			Snippet: snippet(readStart(resp.Body, snippetBytes))})
	}
	if err := decode(resp.Body, c.opts.MaxBytes, into, c.opts.Strict); err != nil {
		switch {
		case errors.Is(err, ErrTooLarge):
			return meta, fail(&Error{Status: resp.StatusCode, Kind: KindTooLarge, Err: err})
		case errors.Is(err, ErrDecode):
			return meta, fail(&Error{Status: resp.StatusCode, Kind: KindDecode, Err: err})
		}
		return meta, fail(c.transportError(ctx, rctx, resp.StatusCode, err))
	}
	return meta, nil
}

// transportError classifies a failure to get or read a reply: the caller's cancellation, our own
// per-request timeout, or a network failure. A transport's error quotes the URL, so it is redacted.
func (c *Client) transportError(parent, rctx context.Context, status int, err error) *Error {
	err = redact.Error(err)
	switch {
	case parent.Err() != nil:
		return &Error{Status: status, Kind: KindCanceled, Err: fmt.Errorf("%w (%v)", parent.Err(), err)}
	case rctx.Err() != nil:
		return &Error{Status: status, Kind: KindTimeout, Err: fmt.Errorf("no complete answer within %s: %w", c.opts.Timeout, err)}
	}
	return &Error{Status: status, Kind: KindNetwork, Err: err}
}

// snippetBytes is how much of an unexpected body an error shows; apiErrorBytes how much is read to find
// Spy Agency's own {"error", "code"} in it.
const (
	snippetBytes  = 512
	apiErrorBytes = 16 << 10
)

func (c *Client) statusError(resp *http.Response, ctype string, date time.Time) *Error {
	start := readStart(resp.Body, apiErrorBytes)
	e := &Error{Status: resp.StatusCode, Kind: KindStatus, Snippet: snippet(start[:min(len(start), snippetBytes)])}
	if isHTML(ctype, e.Snippet) {
		e.Err = fmt.Errorf("HTTP %d, answered HTML, not JSON", resp.StatusCode)
	} else {
		e.Err = fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var api struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if checkJSONType(ctype) == nil && json.Unmarshal(start, &api) == nil && api.Error != "" {
		e.APIMessage, e.APICode = api.Error, api.Code
	}
	now := date
	if now.IsZero() {
		now = c.opts.Now()
	}
	e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	return e
}

// ParseRetryAfter reads a Retry-After header, in seconds or as an HTTP date relative to now (the reply's
// own Date where it has one); 0 when absent, unreadable or past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
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

func readStart(r io.Reader, n int64) []byte {
	buf, _ := io.ReadAll(io.LimitReader(r, n))
	return buf
}

// snippet makes the start of a body fit for an error message: whitespace collapsed, the HTML title
// preferred, cut to 200 characters, secrets taken out.
func snippet(buf []byte) string {
	buf = bytes.ToValidUTF8(buf, []byte("?"))
	s := string(buf)
	if m := titleRE.FindStringSubmatch(s); m != nil {
		s = "title: " + m[1]
	}
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:200]) + "…"
	}
	return redact.Text(s)
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
