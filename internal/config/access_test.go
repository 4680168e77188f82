package config

import (
	"strings"
	"testing"
)

// TestAccessChecks: each wrong access setting is refused at its line, saying what is wanted.
func TestAccessChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yaml, field, msg string
		warning          bool
	}{
		{"access:\n  read: closed\n", "access.read", "want open or authenticated", false},
		{"access:\n  pull: steer\n", "access.pull", "want open or token", false},
		{"access:\n  failed_auth_limit: 0\n", "access.failed_auth_limit", "at least 1", false},
		{"access:\n  failed_auth_window: 0s\n", "access.failed_auth_window", "must be positive", false},
		{"access:\n  oidc:\n    client_id: x\n", "access.oidc.client_id", "without an issuer", false},
		{"access:\n  oidc:\n    issuer: http://sso.example.org/\n    client_id: x\n    redirect_url: https://a.example/auth/callback\n", "access.oidc.issuer", "https://", false},
		{"access:\n  oidc:\n    issuer: https://sso.example.org/\n    redirect_url: https://a.example/auth/callback\n", "access.oidc.client_id", "client ID", false},
		{"access:\n  oidc:\n    issuer: https://sso.example.org/\n    client_id: x\n", "access.oidc.redirect_url", "server.public_url", false},
		{"access:\n  oidc:\n    issuer: https://sso.example.org/\n    client_id: x\n    redirect_url: https://a.example/cb\n    scopes: [profile]\n", "access.oidc.scopes", "openid", false},
		{"access:\n  oidc:\n    issuer: https://sso.example.org/\n    client_id: x\n    redirect_url: https://a.example/cb\n    roles:\n      operator: ['']\n", "access.oidc.roles.operator[0]", "nobody", false},
		{"access:\n  oidc:\n    issuer: https://sso.example.org/\n    client_id: x\n    redirect_url: https://a.example/cb\n", "access.oidc.roles", "only view", true},
		{"access:\n  oidc:\n    client_secret: hunter2\n", "access.oidc.client_secret", "inline secret", false},
		{"server:\n  trusted_proxies: [10.0.0.0/8, proxy.cern.ch]\n", "server.trusted_proxies[1]", "want an address or a network", false},
	} {
		problems := Check("access.yaml", []byte(tc.yaml))
		found := false
		for _, p := range problems {
			found = found || (p.Field == tc.field && strings.Contains(p.Message, tc.msg) && p.Warning == tc.warning && p.Line > 0)
		}
		if !found {
			t.Errorf("%q: want %s: %s (warning %v), got %v", tc.yaml, tc.field, tc.msg, tc.warning, problems)
		}
	}
	good := "server:\n  public_url: https://spyagency.web.cern.ch\n  trusted_proxies: [127.0.0.1]\naccess:\n  oidc:\n    issuer: https://auth.cern.ch/auth/realms/cern\n    client_id: cms-spyagency\n    roles:\n      operator: [pcl-operator]\n"
	c, err := Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Callback() != "https://spyagency.web.cern.ch/auth/callback" || !c.Access.LoginEnabled() || c.Access.OIDC.RolesClaim != "cern_roles" {
		t.Errorf("callback %q, login %v, roles claim %q", c.Callback(), c.Access.LoginEnabled(), c.Access.OIDC.RolesClaim)
	}
}
