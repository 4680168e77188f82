package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// SessionStore keeps login sessions and the key that signs their cookies (the store does).
type SessionStore interface {
	CreateSession(ctx context.Context, s store.Session) error
	Session(ctx context.Context, hash string) (store.Session, error)
	EndSession(ctx context.Context, hash string, at time.Time) error
	Setting(ctx context.Context, key string) (string, bool, error)
	SetSetting(ctx context.Context, key, value string) error
}

// SessionCookie is the name of the session cookie.
const SessionCookie = "spyagency_session"

// DefaultSessionTTL is how long a login lasts: a shift and its handover.
const DefaultSessionTTL = 12 * time.Hour

// keySetting is where the signing key is kept: in the store, so that every replica and every restart
// signs and checks with the same key, and sessions survive a restart.
const keySetting = "access/session-key"

// Sessions makes and checks login sessions. The cookie carries a random identifier and its HMAC; the
// store keeps the identifier's hash, who it is, the role and the expiry. So a cookie is checked
// without a store read when it was not made here, a stolen copy of the store lets nobody in, and a
// logout ends the session for good (the record says so), whatever copies of the cookie exist.
type Sessions struct {
	store SessionStore
	key   []byte
	ttl   time.Duration
	now   func() time.Time
}

// NewSessions loads (or makes, the first time) the signing key. now must be the wall clock.
func NewSessions(ctx context.Context, st SessionStore, ttl time.Duration, now func() time.Time) (*Sessions, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	key, err := loadKey(ctx, st)
	if err != nil {
		return nil, err
	}
	return &Sessions{store: st, key: key, ttl: ttl, now: now}, nil
}

func loadKey(ctx context.Context, st SessionStore) ([]byte, error) {
	v, ok, err := st.Setting(ctx, keySetting)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if !ok {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("session key: %w", err)
		}
		if err := st.SetSetting(ctx, keySetting, hex.EncodeToString(b[:])); err != nil {
			return nil, fmt.Errorf("session key: %w", err)
		}
		// Read back what is stored: another process may have written its own key first.
		if v, ok, err = st.Setting(ctx, keySetting); err != nil || !ok {
			return nil, fmt.Errorf("session key: read back: %v", err)
		}
	}
	key, err := hex.DecodeString(v)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("session key: the stored key is not 32 bytes of hex")
	}
	return key, nil
}

// TTL is how long a session lasts.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// Sign is the HMAC of data under the session key, in a given context (so that a signature made for
// one purpose is never accepted for another).
func (s *Sessions) Sign(purpose string, data []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(data)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks a signature made by Sign.
func (s *Sessions) Verify(purpose string, data []byte, sig string) bool {
	return hmac.Equal([]byte(s.Sign(purpose, data)), []byte(sig))
}

func hashID(id []byte) string {
	sum := sha256.Sum256(id)
	return hex.EncodeToString(sum[:])
}

// Start opens a session for a user with a role, and sets its cookie: HttpOnly, SameSite=Lax, Secure
// when the client reached this server over TLS (directly or through a trusted proxy), with the
// session's lifetime.
func (s *Sessions) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, user string, role Role) (store.Session, error) {
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return store.Session{}, fmt.Errorf("session: %w", err)
	}
	now := s.now().UTC()
	rec := store.Session{Hash: hashID(id[:]), User: user, Role: string(role), Created: now, Expires: now.Add(s.ttl)}
	if err := s.store.CreateSession(ctx, rec); err != nil {
		return store.Session{}, fmt.Errorf("session for %s: %w", user, err)
	}
	value := base64.RawURLEncoding.EncodeToString(id[:]) + "." + s.Sign("session", id[:])
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: value, Path: "/", Expires: rec.Expires,
		MaxAge: int(s.ttl / time.Second), HttpOnly: true, Secure: ClientOf(r).Secure, SameSite: http.SameSiteLaxMode})
	return rec, nil
}

// Clear tells the browser to forget the session cookie.
func Clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: ClientOf(r).Secure, SameSite: http.SameSiteLaxMode})
}

var errNoSession = errors.New("no session cookie")

// id reads and checks the cookie's identifier.
func (s *Sessions) id(r *http.Request) ([]byte, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, errNoSession
	}
	enc, sig, ok := strings.Cut(c.Value, ".")
	id, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil || len(id) != 32 || !s.Verify("session", id, sig) {
		return nil, apperr.Errorf(apperr.Unauthorized, "the session cookie was not made by this server, or was changed; log in again")
	}
	return id, nil
}

// Authenticate returns the principal of the request's session cookie; presented false when there is
// none.
func (s *Sessions) Authenticate(r *http.Request) (p Principal, presented bool, err error) {
	id, err := s.id(r)
	if errors.Is(err, errNoSession) {
		return Anonymous, false, nil
	}
	if err != nil {
		return Anonymous, true, err
	}
	rec, err := s.store.Session(r.Context(), hashID(id))
	if apperr.Is(err, apperr.NotFound) {
		return Anonymous, true, apperr.Errorf(apperr.Unauthorized, "unknown session; log in again")
	}
	if err != nil {
		return Anonymous, true, err
	}
	switch now := s.now(); {
	case !rec.Ended.IsZero():
		return Anonymous, true, apperr.Errorf(apperr.Unauthorized, "this session was logged out at %s; log in again", rec.Ended.Format(time.RFC3339))
	case !now.Before(rec.Expires):
		return Anonymous, true, apperr.Errorf(apperr.Unauthorized, "your session expired at %s; log in again", rec.Expires.Format(time.RFC3339))
	}
	role, err := ParseRole(rec.Role)
	if err != nil {
		return Anonymous, true, apperr.Errorf(apperr.Unauthorized, "the session's role is not known here; log in again")
	}
	return Principal{Name: rec.User, Via: ViaSession, Role: role, CSRF: s.Sign("csrf", id)}, true, nil
}

// End ends the request's session (a logout) and clears its cookie. Without a valid session there is
// nothing to end, and the cookie is cleared all the same.
func (s *Sessions) End(w http.ResponseWriter, r *http.Request) (string, error) {
	Clear(w, r)
	id, err := s.id(r)
	if err != nil {
		return "", nil
	}
	rec, err := s.store.Session(r.Context(), hashID(id))
	if err != nil {
		return "", nil
	}
	if err := s.store.EndSession(r.Context(), rec.Hash, s.now().UTC()); err != nil {
		return "", fmt.Errorf("logout: %w", err)
	}
	return rec.User, nil
}
