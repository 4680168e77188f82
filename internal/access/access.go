// Package access decides who may act on Spy Agency. Reading is open; operator actions (overrides,
// silences) need the operate scope. Scripts and Tier-0 use API tokens: a token is shown once when made
// and only its SHA-256 is stored. The demo opens the operator role to loopback clients.
package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
)

// Scope is what a token allows.
type Scope string

const (
	ScopeRead    Scope = "read"    // read the API
	ScopeSteer   Scope = "steer"   // read, and Tier-0's pull API
	ScopeOperate Scope = "operate" // read, and operator actions
)

// ParseScope accepts read, steer or operate.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeRead, ScopeSteer, ScopeOperate:
		return Scope(s), nil
	}
	return "", apperr.Errorf(apperr.Invalid, "unknown scope %q (want read, steer or operate)", s)
}

// Settings is where tokens are kept (the store's key-value settings).
type Settings interface {
	Setting(ctx context.Context, key string) (string, bool, error)
	SetSetting(ctx context.Context, key, value string) error
}

// Token is what is stored of a token: never the token itself.
type Token struct {
	Name    string    `json:"name"`
	Scope   Scope     `json:"scope"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

const prefix = "sa_"

var validName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

func key(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "token/" + hex.EncodeToString(sum[:])
}

// Create makes a token, stores its hash and returns the token (to be shown once).
func Create(ctx context.Context, s Settings, name string, scope Scope, now time.Time, ttl time.Duration) (string, error) {
	if !validName.MatchString(name) {
		return "", apperr.Errorf(apperr.Invalid, "bad token name %q: letters, digits and . _ @ - only, at most 64", name)
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return "", err
	}
	if ttl < 0 {
		return "", apperr.Errorf(apperr.Invalid, "a token cannot expire in the past")
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	secret := prefix + base64.RawURLEncoding.EncodeToString(b[:])
	t := Token{Name: name, Scope: scope, Created: now.UTC()}
	if ttl > 0 {
		t.Expires = now.Add(ttl).UTC()
	}
	body, _ := json.Marshal(t)
	if err := s.SetSetting(ctx, key(secret), string(body)); err != nil {
		return "", fmt.Errorf("token: store: %w", err)
	}
	return secret, nil
}

// Lookup finds the token a request presents as "Authorization: Bearer <token>".
func Lookup(ctx context.Context, s Settings, r *http.Request, now time.Time) (Token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Token{}, apperr.Errorf(apperr.Unauthorized, "no token: send Authorization: Bearer <token> (make one with `spyagency token create`)")
	}
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || !strings.HasPrefix(secret, prefix) || len(secret) > 100 {
		return Token{}, apperr.Errorf(apperr.Unauthorized, "malformed Authorization header: want Bearer sa_...")
	}
	v, ok, err := s.Setting(ctx, key(secret))
	if err != nil {
		return Token{}, err
	}
	if !ok {
		return Token{}, apperr.Errorf(apperr.Unauthorized, "unknown token")
	}
	var t Token
	if err := json.Unmarshal([]byte(v), &t); err != nil {
		return Token{}, fmt.Errorf("token record: %w", err)
	}
	if !t.Expires.IsZero() && !now.Before(t.Expires) {
		return Token{}, apperr.Errorf(apperr.Unauthorized, "token %s expired at %s", t.Name, t.Expires.Format(time.RFC3339))
	}
	return t, nil
}

// Operators decides who may act on runs (the web's Operators): a token with the operate scope, or,
// when LoopbackOpen (the demo), any client on a loopback address.
type Operators struct {
	Settings Settings
	// WallNow must be the wall clock (time.Now), not the agency's: a token is made for a span of real
	// time (`token create --expires 720h` stamps its expiry with the wall clock), and the agency's clock
	// may be a simulated one that runs 600 times faster, or sits in the past.
	WallNow      func() time.Time
	LoopbackOpen bool
}

// Operator returns the name of who may act with the request, or why they may not.
func (o Operators) Operator(r *http.Request) (string, error) {
	if r.Header.Get("Authorization") == "" && o.LoopbackOpen && Loopback(r) {
		if crossSite(r) {
			return "", apperr.Errorf(apperr.Forbidden, "a cross-site request may not act, even from this machine")
		}
		return "demo-operator (loopback)", nil
	}
	t, err := Lookup(r.Context(), o.Settings, r, o.WallNow())
	if err != nil {
		return "", err
	}
	if t.Scope != ScopeOperate {
		return "", apperr.Errorf(apperr.Forbidden, "token %s has scope %s; operator actions need operate", t.Name, t.Scope)
	}
	return t.Name, nil
}

// Operator is Operators' check as a function.
func Operator(s Settings, wallNow func() time.Time, loopbackOpen bool) func(*http.Request) (string, error) {
	return Operators{Settings: s, WallNow: wallNow, LoopbackOpen: loopbackOpen}.Operator
}

// crossSite says whether a browser marked the request as coming from another site: any page open on this
// machine could otherwise use the demo's open loopback access.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err != nil || u.Host != r.Host
	}
	return false
}

// Loopback says whether the request comes from this machine.
func Loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
