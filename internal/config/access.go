package config

import (
	"fmt"
	"slices"
	"strings"
)

// checkAccess checks the access block: what reading and the pull API need, the limit of failed
// authentications, and the OIDC login.
func (d *decoder) checkAccess(c *Config) {
	a := c.Access
	if a.Read != "open" && a.Read != "authenticated" {
		d.addf(d.at("access.read"), "access.read", "want open or authenticated, got %q", a.Read)
	}
	if a.Pull != "open" && a.Pull != "token" {
		d.addf(d.at("access.pull"), "access.pull", "want open or token, got %q", a.Pull)
	}
	if a.FailedAuthLimit < 1 {
		d.addf(d.at("access.failed_auth_limit"), "access.failed_auth_limit", "must be at least 1, got %d", a.FailedAuthLimit)
	}
	d.positive("access.failed_auth_window", a.FailedAuthWindow)
	o := a.OIDC
	if o.Issuer == "" {
		for _, f := range []struct{ key, v string }{{"client_id", o.ClientID}, {"client_secret_file", o.ClientSecretFile},
			{"client_secret_env", o.ClientSecretEnv}, {"redirect_url", o.RedirectURL}} {
			if f.v != "" {
				d.addf(d.at("access.oidc."+f.key), "access.oidc."+f.key, "set, but access.oidc.issuer is not: without an issuer nobody logs in")
			}
		}
		return
	}
	if !strings.HasPrefix(o.Issuer, "https://") && !loopbackURL(o.Issuer) {
		d.addf(d.at("access.oidc.issuer"), "access.oidc.issuer", "the provider must be reached over https:// (plain http only on this machine), got %q", o.Issuer)
	} else {
		d.checkURL("access.oidc.issuer", o.Issuer)
	}
	if o.ClientID == "" {
		d.addf(d.at("access.oidc.client_id"), "access.oidc.client_id", "a login needs the client ID registered with the provider")
	}
	switch cb := c.Callback(); {
	case cb == "":
		d.addf(d.at("access.oidc"), "access.oidc.redirect_url", "a login needs its callback: set redirect_url, or server.public_url (the callback is then <public_url>/auth/callback)")
	case o.RedirectURL != "":
		d.checkURL("access.oidc.redirect_url", o.RedirectURL)
	}
	if !slices.Contains(o.Scopes, "openid") {
		d.addf(d.at("access.oidc.scopes"), "access.oidc.scopes", "must include openid, got %v", o.Scopes)
	}
	if o.RolesClaim == "" {
		d.addf(d.at("access.oidc.roles_claim"), "access.oidc.roles_claim", "must name the claim that holds groups or roles")
	}
	d.positive("access.oidc.session_ttl", o.SessionTTL)
	for _, r := range []struct {
		key    string
		values []string
	}{{"viewer", o.Roles.Viewer}, {"operator", o.Roles.Operator}, {"admin", o.Roles.Admin}} {
		for i, v := range r.values {
			if strings.TrimSpace(v) == "" {
				f := fmt.Sprintf("access.oidc.roles.%s[%d]", r.key, i)
				d.addf(d.at(f), f, "an empty value gives the role to nobody")
			}
		}
	}
	if len(o.Roles.Operator) == 0 && len(o.Roles.Admin) == 0 {
		d.warnf(d.at("access.oidc.roles"), "access.oidc.roles", "no value gives the operator or admin role: people who log in can only view, and act with tokens of the operate scope")
	}
}
