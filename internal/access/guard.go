package access

import (
	"net/http"
)

// LoopbackOperator is the name the audit log gives the demo's loopback operator.
const LoopbackOperator = "demo-operator (loopback)"

// Guard says who a request comes from (the web's Authenticator): an API token when the request has an
// Authorization header, else a login's session when it has the session cookie, else, in the demo, an
// operator when it comes from this machine, else anonymous. A token or session presented and invalid
// is an error (apperr.Unauthorized), never anonymous; nor does a bad token fall back to a good cookie.
type Guard struct {
	Tokens *Tokens
	// Sessions is nil without logins (no OIDC provider configured): a session cookie is then refused.
	Sessions *Sessions
	// LoopbackOperator opens the operator role to loopback clients that present nothing (the demo).
	LoopbackOperator bool
}

// Authenticate is the request's principal.
func (g *Guard) Authenticate(r *http.Request) (Principal, error) {
	secret, presented, err := bearer(r)
	if err != nil {
		return Anonymous, err
	}
	if presented {
		if g.Tokens == nil {
			return Anonymous, errNoTokens
		}
		rec, err := g.Tokens.Check(r.Context(), secret)
		if err != nil {
			return Anonymous, err
		}
		return tokenPrincipal(rec), nil
	}
	if g.Sessions != nil {
		p, presented, err := g.Sessions.Authenticate(r)
		if presented {
			return p, err
		}
	} else if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		return Anonymous, errNoLogins
	}
	if g.LoopbackOperator && Loopback(r) {
		return Principal{Name: LoopbackOperator, Via: ViaLoopback, Role: RoleOperator}, nil
	}
	return Anonymous, nil
}

var (
	errNoTokens = unauthorized("this server takes no API tokens")
	errNoLogins = unauthorized("this server has no logins (no OIDC provider is configured), so the session cookie is not one of its own; clear it")
)
