package sso

import (
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/apperr"
)

// TestRoles: the highest role any value of the claim gives wins; a claim may be a list or one string;
// with a viewer list, a person with none of the listed values may not log in.
func TestRoles(t *testing.T) {
	t.Parallel()
	open := &Login{o: Options{RolesClaim: "groups", Roles: Roles{Operator: []string{"ops"}, Admin: []string{"admins"}}}}
	closed := &Login{o: Options{RolesClaim: "cern_roles", Roles: Roles{Viewer: []string{"viewers"}, Operator: []string{"ops"}}}}
	for _, tc := range []struct {
		l      *Login
		claims map[string]any
		want   access.Role
	}{
		{open, map[string]any{"groups": []any{"users", "ops"}}, access.RoleOperator},
		{open, map[string]any{"groups": []any{"ops", "admins"}}, access.RoleAdmin},
		{open, map[string]any{"groups": "ops"}, access.RoleOperator},
		{open, map[string]any{"groups": []any{"users", 7, nil}}, access.RoleViewer},
		{open, map[string]any{}, access.RoleViewer},
		{closed, map[string]any{"cern_roles": []any{"viewers"}}, access.RoleViewer},
		{closed, map[string]any{"cern_roles": []any{"ops"}}, access.RoleOperator},
		{closed, map[string]any{"groups": []any{"ops"}}, ""}, // the wrong claim gives nothing
		{closed, map[string]any{"cern_roles": []any{"everyone"}}, ""},
	} {
		got, err := tc.l.role("alice", tc.claims)
		if tc.want == "" {
			if !apperr.Is(err, apperr.Forbidden) || !strings.Contains(err.Error(), "alice") {
				t.Errorf("%v: %q %v, want refused", tc.claims, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %q %v, want %s", tc.claims, got, err, tc.want)
		}
	}
}

// TestUser: the person is named by the configured claim, else preferred_username, else email, else
// the subject; nothing unprintable reaches the audit log.
func TestUser(t *testing.T) {
	t.Parallel()
	l := &Login{}
	for _, tc := range []struct {
		claims map[string]any
		want   string
	}{
		{map[string]any{"preferred_username": "alice", "email": "a@cern.ch"}, "alice"},
		{map[string]any{"email": "a@cern.ch"}, "a@cern.ch"},
		{map[string]any{"preferred_username": "\x1b[31mroot\n"}, "[31mroot"},
		{map[string]any{"preferred_username": 42}, "sub-1"},
		{map[string]any{}, "sub-1"},
	} {
		if got := l.user(tc.claims, "sub-1"); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.claims, got, tc.want)
		}
	}
	named := &Login{o: Options{UserClaim: "cern_upn"}}
	if got := named.user(map[string]any{"cern_upn": "asmith", "preferred_username": "alice"}, "s"); got != "asmith" {
		t.Errorf("configured claim: %q", got)
	}
}
