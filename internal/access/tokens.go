package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TokenStore keeps API tokens (the store does).
type TokenStore interface {
	CreateToken(ctx context.Context, t store.APIToken) error
	TokenByHash(ctx context.Context, hash string) (store.APIToken, error)
	Tokens(ctx context.Context) ([]store.APIToken, error)
	RevokeToken(ctx context.Context, name string, at time.Time) (store.APIToken, error)
	TokenUsed(ctx context.Context, hash string, at time.Time) error
}

// tokenPrefix marks Spy Agency's tokens, so that one pasted in the wrong place is recognised.
const tokenPrefix = "sa_"

// tokenLen is the length of a token: the prefix and 32 random bytes in unpadded base64url.
var tokenLen = len(tokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

var validName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// usedEvery bounds how often a token's last use is written: once a minute is exact enough for "last
// used", and Tier-0 polling every few seconds must not turn every read into a write.
const usedEvery = time.Minute

// Tokens makes and checks API tokens.
type Tokens struct {
	Store TokenStore
	// Now must be the wall clock (time.Now), not the agency's: a token is made for a span of real
	// time (`token create --expires 720h`), and the agency's clock may be a simulated one that runs 600
	// times faster, or sits in the past.
	Now func() time.Time

	mu   sync.Mutex
	used map[string]time.Time // hash → last use written
}

// HashToken is the hex SHA-256 under which a token is stored.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Create makes a token, stores its hash and returns the token (to be shown once). ttl 0 is no expiry.
func (t *Tokens) Create(ctx context.Context, name string, scope Scope, ttl time.Duration) (string, store.APIToken, error) {
	if !validName.MatchString(name) {
		return "", store.APIToken{}, apperr.Errorf(apperr.Invalid, "bad token name %q: letters, digits and . _ @ - only, at most 64", name)
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return "", store.APIToken{}, err
	}
	if ttl < 0 {
		return "", store.APIToken{}, apperr.Errorf(apperr.Invalid, "a token cannot expire in the past")
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", store.APIToken{}, fmt.Errorf("token: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := t.Now().UTC()
	rec := store.APIToken{Hash: HashToken(secret), Name: name, Scope: string(scope), Created: now}
	if ttl > 0 {
		rec.Expires = now.Add(ttl)
	}
	if err := t.Store.CreateToken(ctx, rec); err != nil {
		return "", store.APIToken{}, fmt.Errorf("token %s: %w", name, err)
	}
	return secret, rec, nil
}

// Revoke revokes the live token of that name.
func (t *Tokens) Revoke(ctx context.Context, name string) (store.APIToken, error) {
	return t.Store.RevokeToken(ctx, name, t.Now().UTC())
}

// List lists every token, live and revoked.
func (t *Tokens) List(ctx context.Context) ([]store.APIToken, error) { return t.Store.Tokens(ctx) }

// bearer reads "Authorization: Bearer <token>": ok false when the header is absent, an error when it is
// there but not a token of ours.
func bearer(r *http.Request) (string, bool, error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return "", false, nil
	}
	if len(h) > 1 {
		return "", true, apperr.Errorf(apperr.Unauthorized, "more than one Authorization header")
	}
	scheme, secret, _ := strings.Cut(h[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", true, apperr.Errorf(apperr.Unauthorized, "malformed Authorization header: want Bearer sa_... (make a token with `spyagency token create`)")
	}
	secret = strings.TrimSpace(secret)
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) != tokenLen {
		return "", true, apperr.Errorf(apperr.Unauthorized, "malformed token: Spy Agency's tokens are sa_ and 43 characters (make one with `spyagency token create`)")
	}
	return secret, true, nil
}

// Check finds the live token a secret names, and records its use.
func (t *Tokens) Check(ctx context.Context, secret string) (store.APIToken, error) {
	hash := HashToken(secret)
	rec, err := t.Store.TokenByHash(ctx, hash)
	if apperr.Is(err, apperr.NotFound) {
		return store.APIToken{}, apperr.Errorf(apperr.Unauthorized, "unknown token")
	}
	if err != nil {
		return store.APIToken{}, err
	}
	now := t.Now()
	switch {
	case !rec.Revoked.IsZero():
		return store.APIToken{}, apperr.Errorf(apperr.Unauthorized, "token %s was revoked at %s", rec.Name, rec.Revoked.Format(time.RFC3339))
	case !rec.Expires.IsZero() && !now.Before(rec.Expires):
		return store.APIToken{}, apperr.Errorf(apperr.Unauthorized, "token %s expired at %s", rec.Name, rec.Expires.Format(time.RFC3339))
	}
	t.noteUse(ctx, rec, now)
	return rec, nil
}

// noteUse writes a token's last use at most once a minute per token. A failed write loses a last-used
// time, never the request: it is a record, not a check.
func (t *Tokens) noteUse(ctx context.Context, rec store.APIToken, now time.Time) {
	t.mu.Lock()
	if t.used == nil {
		t.used = map[string]time.Time{}
	}
	last, ok := t.used[rec.Hash]
	if !ok {
		last = rec.LastUsed
	}
	due := now.Sub(last) >= usedEvery
	if due {
		t.used[rec.Hash] = now
	}
	t.mu.Unlock()
	if due {
		_ = t.Store.TokenUsed(ctx, rec.Hash, now.UTC())
	}
}

// principal is a token as a principal: named token:<name> in the audit log.
func tokenPrincipal(rec store.APIToken) Principal {
	return Principal{Name: "token:" + rec.Name, Via: ViaToken, Scope: Scope(rec.Scope)}
}
