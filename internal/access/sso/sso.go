// Package sso logs people in with OpenID Connect (CERN SSO is an OIDC provider): the authorization-code
// flow with PKCE, state and nonce, through github.com/coreos/go-oidc and golang.org/x/oauth2. The
// state, nonce, PKCE verifier and the page to return to travel in a short-lived signed cookie, so that
// any replica can finish a login another began. A login's role comes from a configurable claim of the
// ID token (groups, or CERN's e-groups and application roles), mapped to viewer, operator or admin;
// the session itself is internal/access's.
package sso

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/redact"
)

// Roles maps the values of the roles claim to roles. A person gets the highest role any of their
// values gives. With Viewer empty, anyone the provider logs in may view; otherwise only those with a
// listed value (or an operator's or admin's) may log in at all.
type Roles struct {
	Viewer   []string
	Operator []string
	Admin    []string
}

// Options configure the login.
type Options struct {
	Issuer       string // the provider, e.g. https://auth.cern.ch/auth/realms/cern
	ClientID     string
	ClientSecret string // "" for a public client, which PKCE alone protects
	RedirectURL  string // this server's callback: https://<host>/auth/callback, registered with the provider
	// Scopes asked for; default openid, profile, email.
	Scopes []string
	// UserClaim names the person in the audit log; default preferred_username, then email, then sub.
	UserClaim string
	// RolesClaim is the claim holding groups or roles (a list of strings, or one string); default
	// "groups". CERN SSO puts a client's application roles in cern_roles.
	RolesClaim string
	Roles      Roles
	Sessions   *access.Sessions
	// HTTP reaches the provider (discovery, keys, the token endpoint). Default: 30 s timeout.
	HTTP *http.Client
	// Now is the wall clock (login state's expiry); default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// loginCookie holds a login in progress.
const loginCookie = "spyagency_login"

// loginTTL bounds a login in progress: long enough to type a password and a second factor.
const loginTTL = 10 * time.Minute

// Login is the OIDC login (the web's Login).
type Login struct {
	o Options

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use, so that serve starts while the provider is down
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

// New checks the options; it reaches nothing (the provider is discovered at the first login).
func New(o Options) (*Login, error) {
	switch {
	case o.Issuer == "" || o.ClientID == "" || o.RedirectURL == "":
		return nil, errors.New("sso: issuer, client ID and redirect URL are required")
	case o.Sessions == nil:
		return nil, errors.New("sso: sessions are required")
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	}
	if !slices.Contains(o.Scopes, oidc.ScopeOpenID) {
		o.Scopes = append([]string{oidc.ScopeOpenID}, o.Scopes...)
	}
	if o.RolesClaim == "" {
		o.RolesClaim = "groups"
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Login{o: o}, nil
}

func (l *Login) context(ctx context.Context) context.Context {
	ctx = oidc.ClientContext(ctx, l.o.HTTP)
	return context.WithValue(ctx, oauth2.HTTPClient, l.o.HTTP)
}

// discover finds the provider's endpoints and keys, once.
func (l *Login) discover(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.provider != nil {
		return l.oauth, l.verifier, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(l.context(ctx), l.o.Issuer)
	if err != nil {
		return nil, nil, apperr.Errorf(apperr.Unavailable, "the login provider %s does not answer: %s", redact.URL(l.o.Issuer), redact.Error(err))
	}
	l.provider = p
	l.verifier = p.Verifier(&oidc.Config{ClientID: l.o.ClientID, Now: l.o.Now})
	l.oauth = &oauth2.Config{ClientID: l.o.ClientID, ClientSecret: l.o.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: l.o.RedirectURL, Scopes: l.o.Scopes}
	return l.oauth, l.verifier, nil
}

// pending is a login in progress, as its cookie carries it.
type pending struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Next     string    `json:"r"`
	Expires  time.Time `json:"e"`
}

func random() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Begin starts a login that returns to next (a path on this server), and returns the provider's URL
// to send the browser to.
func (l *Login) Begin(w http.ResponseWriter, r *http.Request, next string) (string, error) {
	oc, _, err := l.discover(r.Context())
	if err != nil {
		return "", err
	}
	state, err1 := random()
	nonce, err2 := random()
	if err := errors.Join(err1, err2); err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	p := pending{State: state, Nonce: nonce, Verifier: oauth2.GenerateVerifier(), Next: access.SafeNext(next), Expires: l.o.Now().Add(loginTTL)}
	body, _ := json.Marshal(p)
	value := base64.RawURLEncoding.EncodeToString(body) + "." + l.o.Sessions.Sign("login", body)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: value, Path: "/auth/", MaxAge: int(loginTTL / time.Second),
		HttpOnly: true, Secure: access.ClientOf(r).Secure, SameSite: http.SameSiteLaxMode})
	return oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(p.Verifier)), nil
}

func (l *Login) pending(r *http.Request) (pending, error) {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		return pending{}, apperr.Errorf(apperr.Unauthorized, "no login is in progress in this browser (cookies off, or it took longer than %s); log in again", loginTTL)
	}
	enc, sig, _ := strings.Cut(c.Value, ".")
	body, err := base64.RawURLEncoding.DecodeString(enc)
	var p pending
	if err != nil || !l.o.Sessions.Verify("login", body, sig) || json.Unmarshal(body, &p) != nil {
		return pending{}, apperr.Errorf(apperr.Unauthorized, "the login cookie was not made by this server; log in again")
	}
	if !l.o.Now().Before(p.Expires) {
		return pending{}, apperr.Errorf(apperr.Unauthorized, "the login took longer than %s; log in again", loginTTL)
	}
	return p, nil
}

// Finish completes a login at the callback: it checks the state, exchanges the code with the PKCE
// verifier, verifies the ID token and its nonce, maps the roles claim to a role and starts a session.
// It returns where to send the browser.
func (l *Login) Finish(w http.ResponseWriter, r *http.Request) (string, error) {
	p, err := l.pending(r)
	// The login cookie is for one use, whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/auth/", MaxAge: -1, HttpOnly: true,
		Secure: access.ClientOf(r).Secure, SameSite: http.SameSiteLaxMode})
	if err != nil {
		return "", err
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return "", apperr.Errorf(apperr.Unauthorized, "the login provider refused the login: %s %s", printable(e, 64), printable(q.Get("error_description"), 200))
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.State)) != 1 {
		return "", apperr.Errorf(apperr.Unauthorized, "the login's state does not match this browser's (a login started elsewhere, or a forged callback); log in again")
	}
	code := q.Get("code")
	if code == "" {
		return "", apperr.Errorf(apperr.Unauthorized, "the login provider sent no code back")
	}
	oc, verifier, err := l.discover(r.Context())
	if err != nil {
		return "", err
	}
	ctx := l.context(r.Context())
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(p.Verifier))
	if err != nil {
		return "", apperr.Errorf(apperr.Unauthorized, "the login provider refused the code: %s", describeExchange(err))
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return "", apperr.Errorf(apperr.Unauthorized, "the login provider sent no ID token")
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return "", apperr.Errorf(apperr.Unauthorized, "the ID token does not verify: %s", redact.Error(err))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.Nonce)) != 1 {
		return "", apperr.Errorf(apperr.Unauthorized, "the ID token's nonce is not this login's")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", apperr.Errorf(apperr.Unauthorized, "the ID token's claims do not decode: %v", err)
	}
	user := l.user(claims, idt.Subject)
	role, err := l.role(user, claims)
	if err != nil {
		return "", err
	}
	if _, err := l.o.Sessions.Start(r.Context(), w, r, user, role); err != nil {
		return "", err
	}
	l.o.Logger.Info("login", "user", user, "role", role)
	return access.SafeNext(p.Next), nil
}

// Logout ends the request's session.
func (l *Login) Logout(w http.ResponseWriter, r *http.Request) (string, error) {
	return l.o.Sessions.End(w, r)
}

// user is who the ID token names.
func (l *Login) user(claims map[string]any, subject string) string {
	names := []string{"preferred_username", "email"}
	if l.o.UserClaim != "" {
		names = []string{l.o.UserClaim}
	}
	for _, n := range names {
		if s, ok := claims[n].(string); ok && printable(s, 128) != "" {
			return printable(s, 128)
		}
	}
	return printable(subject, 128)
}

// role maps the roles claim to the highest role it gives.
func (l *Login) role(user string, claims map[string]any) (access.Role, error) {
	var values []string
	switch v := claims[l.o.RolesClaim].(type) {
	case string:
		values = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				values = append(values, s)
			}
		}
	}
	has := func(list []string) bool {
		for _, v := range values {
			if slices.Contains(list, v) {
				return true
			}
		}
		return false
	}
	switch {
	case has(l.o.Roles.Admin):
		return access.RoleAdmin, nil
	case has(l.o.Roles.Operator):
		return access.RoleOperator, nil
	case len(l.o.Roles.Viewer) == 0 || has(l.o.Roles.Viewer):
		return access.RoleViewer, nil
	}
	return "", apperr.Errorf(apperr.Forbidden, "%s may not use this Spy Agency: none of the values of the %s claim gives a role here (ask its administrators to add you to a group it lists)", user, l.o.RolesClaim)
}

// describeExchange says why the token endpoint refused, without its body beyond the error code.
func describeExchange(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return printable(re.ErrorCode+" "+re.ErrorDescription, 200)
		}
		if re.Response != nil {
			return re.Response.Status
		}
	}
	return redact.Text(err.Error())
}

// printable keeps what a provider sends fit for a page and the audit log: no control characters, at
// most max bytes.
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		s = s[:max]
	}
	return s
}
