// Package access decides who a request comes from and what they may do. People log in with OIDC
// (internal/access/sso; CERN SSO is an OIDC provider) and hold a signed session cookie that carries a
// role: viewer, operator (overrides, silences) or admin (tokens, configuration views). Machines (Tier-0,
// scripts) present API tokens with a scope: read, steer (read and Tier-0's pull API) or operate (read
// and operator actions). A token is shown once when made; only its SHA-256 is stored, with its expiry
// on the wall clock and the time it was last used. The demo alone opens the operator role to loopback
// clients.
//
// Credentials that are presented and invalid (an unknown, expired or revoked token, a tampered,
// expired or ended session) are refused, never taken as anonymous: a client that believes it holds a
// right must learn that it does not. What each route needs is the web's route table (internal/web).
package access

import (
	"fmt"

	"github.com/cms-pcl/spyagency/internal/apperr"
)

// Scope is what a token allows.
type Scope string

const (
	ScopeRead    Scope = "read"    // read the API
	ScopeSteer   Scope = "steer"   // read, and Tier-0's pull API
	ScopeOperate Scope = "operate" // read, and operator actions
)

// Scopes are the scopes a token can have.
var Scopes = []Scope{ScopeRead, ScopeSteer, ScopeOperate}

// ParseScope accepts read, steer or operate.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeRead, ScopeSteer, ScopeOperate:
		return Scope(s), nil
	}
	return "", apperr.Errorf(apperr.Invalid, "unknown scope %q (want read, steer or operate)", s)
}

// Role is what a person may do; each role may do what the roles below it may.
type Role string

const (
	RoleViewer   Role = "viewer"   // read everything
	RoleOperator Role = "operator" // and act: overrides, silences
	RoleAdmin    Role = "admin"    // and manage: tokens, the configuration's views
)

// Roles are the roles, lowest first.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

func (r Role) rank() int {
	for i, x := range Roles {
		if x == r {
			return i + 1
		}
	}
	return 0
}

// AtLeast says whether the role may do what role o may.
func (r Role) AtLeast(o Role) bool { return r.rank() > 0 && r.rank() >= o.rank() }

// ParseRole accepts viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.rank() > 0 {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want viewer, operator or admin)", s)
}

// Via is how a principal proved who it is.
type Via string

const (
	ViaNone     Via = ""         // anonymous: nothing was presented
	ViaSession  Via = "session"  // a login's session cookie
	ViaToken    Via = "token"    // an API token
	ViaLoopback Via = "loopback" // the demo's open operator role for this machine's clients
)

// Principal is who a request comes from.
type Principal struct {
	// Name is what the audit log records: the user the provider named, "token:<name>", or the demo's
	// loopback operator.
	Name string
	Via  Via
	// Role is a person's (sessions and the loopback operator); Scope a token's.
	Role  Role
	Scope Scope
	// CSRF is the form token a session's state-changing requests must carry ("" for other principals).
	CSRF string
}

// Anonymous is the principal of a request that presented nothing.
var Anonymous = Principal{}

// IsAnonymous says whether nothing was presented.
func (p Principal) IsAnonymous() bool { return p.Via == ViaNone }

// CanRead says whether the principal may read when reading needs a login: any login or token.
func (p Principal) CanRead() bool {
	return p.Via == ViaToken || p.Role.AtLeast(RoleViewer)
}

// CanPull says whether the principal may read Tier-0's pull API when it needs a token: a steer token.
func (p Principal) CanPull() bool { return p.Via == ViaToken && p.Scope == ScopeSteer }

// CanOperate says whether the principal may act on runs and alerts: an operator (or admin), or an
// operate token.
func (p Principal) CanOperate() bool {
	if p.Via == ViaToken {
		return p.Scope == ScopeOperate
	}
	return p.Role.AtLeast(RoleOperator)
}

// CanAdmin says whether the principal may manage tokens and see the configuration: an admin's login.
// No token scope reaches it: a token that could make tokens would outlive every revocation.
func (p Principal) CanAdmin() bool { return p.Via == ViaSession && p.Role.AtLeast(RoleAdmin) }

// Describe is the principal in words, for the page and errors.
func (p Principal) Describe() string {
	switch p.Via {
	case ViaToken:
		return fmt.Sprintf("%s (scope %s)", p.Name, p.Scope)
	case ViaSession, ViaLoopback:
		return fmt.Sprintf("%s (%s)", p.Name, p.Role)
	}
	return "anonymous"
}

func unauthorized(msg string) error { return apperr.Errorf(apperr.Unauthorized, "%s", msg) }
