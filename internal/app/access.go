package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/access/sso"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web"
)

// buildAccess makes who-is-who of the configuration: API tokens always, logins when access.oidc names
// a provider (the session key is read from the store, or made there the first time), and the demo's
// loopback operator when the App opens it.
func buildAccess(ctx context.Context, cfg *config.Config, st store.Store, tokens *access.Tokens, o Options) (*access.Guard, web.Login, error) {
	g := &access.Guard{Tokens: tokens, LoopbackOperator: o.OpenLoopback}
	if !cfg.Access.LoginEnabled() {
		return g, nil, nil
	}
	oc := cfg.Access.OIDC
	sessions, err := access.NewSessions(ctx, st, oc.SessionTTL, o.WallNow)
	if err != nil {
		return nil, nil, err
	}
	g.Sessions = sessions
	secret, err := oc.ClientSecret(os.LookupEnv)
	if err != nil {
		return nil, nil, err
	}
	// go-oidc and oauth2 take a plain *http.Client; the provider is reached directly (no proxy from
	// the environment), with a bound on every exchange.
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 20 * time.Second, IdleConnTimeout: time.Minute}}
	l, err := sso.New(sso.Options{Issuer: oc.Issuer, ClientID: oc.ClientID, ClientSecret: secret, RedirectURL: cfg.Callback(),
		Scopes: oc.Scopes, UserClaim: oc.UserClaim, RolesClaim: oc.RolesClaim,
		Roles:    sso.Roles{Viewer: oc.Roles.Viewer, Operator: oc.Roles.Operator, Admin: oc.Roles.Admin},
		Sessions: sessions, HTTP: hc, Now: o.WallNow, Logger: o.Logger.With("part", "login")})
	if err != nil {
		return nil, nil, fmt.Errorf("access: %w", err)
	}
	return g, l, nil
}
