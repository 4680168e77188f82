package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

func accessTests() []subtest {
	return []subtest{
		{"Tokens", testTokens},
		{"TokenNames", testTokenNames},
		{"Sessions", testSessions},
		{"SessionsForgotten", testSessionsForgotten},
	}
}

// testTokens: a token reads back as stored, its last use only moves forward, and a revoked one stays
// listed with its revocation time.
func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := epoch()
	tok := store.APIToken{Hash: "aa01", Name: "tier0-prod", Scope: "steer", Created: at, Expires: at.Add(720 * time.Hour)}
	must(t, "create", s.CreateToken(ctx, tok))
	must(t, "create another", s.CreateToken(ctx, store.APIToken{Hash: "bb02", Name: "calib-shifter", Scope: "operate", Created: at.Add(time.Minute)}))
	got, err := s.TokenByHash(ctx, "aa01")
	must(t, "by hash", err)
	if got != tok {
		t.Errorf("token read back as %+v, want %+v", got, tok)
	}
	_, err = s.TokenByHash(ctx, "cc03")
	wantCode(t, "unknown hash", err, apperr.NotFound)

	must(t, "used", s.TokenUsed(ctx, "aa01", at.Add(2*time.Hour)))
	must(t, "used earlier", s.TokenUsed(ctx, "aa01", at.Add(time.Hour)))
	must(t, "unknown token used", s.TokenUsed(ctx, "cc03", at.Add(time.Hour)))
	if got, _ := s.TokenByHash(ctx, "aa01"); !got.LastUsed.Equal(at.Add(2 * time.Hour)) {
		t.Errorf("last used %s, want the later use %s", got.LastUsed, at.Add(2*time.Hour))
	}

	revoked, err := s.RevokeToken(ctx, "tier0-prod", at.Add(3*time.Hour))
	must(t, "revoke", err)
	if revoked.Hash != "aa01" || !revoked.Revoked.Equal(at.Add(3*time.Hour)) {
		t.Errorf("revoked %+v", revoked)
	}
	_, err = s.RevokeToken(ctx, "tier0-prod", at.Add(4*time.Hour))
	wantCode(t, "revoke twice", err, apperr.NotFound)
	if got, _ := s.TokenByHash(ctx, "aa01"); !got.Revoked.Equal(at.Add(3 * time.Hour)) {
		t.Errorf("a revoked token reads %+v", got)
	}
	list, err := s.Tokens(ctx)
	must(t, "list", err)
	if len(list) != 2 || list[0].Name != "calib-shifter" || list[1].Name != "tier0-prod" || list[1].Revoked.IsZero() {
		t.Errorf("list = %+v, want calib-shifter then the revoked tier0-prod", list)
	}
	wantCode(t, "no hash", s.CreateToken(ctx, store.APIToken{Name: "x", Scope: "read", Created: at}), apperr.Invalid)
	wantCode(t, "no time", s.CreateToken(ctx, store.APIToken{Hash: "dd04", Name: "x", Scope: "read"}), apperr.Invalid)
	wantCode(t, "same hash", s.CreateToken(ctx, store.APIToken{Hash: "bb02", Name: "y", Scope: "read", Created: at}), apperr.Conflict)
}

// testTokenNames: one live token per name; once it is revoked the name can be used again, and the
// old one stays listed.
func testTokenNames(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := epoch()
	must(t, "create", s.CreateToken(ctx, store.APIToken{Hash: "01", Name: "dashboard", Scope: "read", Created: at}))
	wantCode(t, "same name", s.CreateToken(ctx, store.APIToken{Hash: "02", Name: "dashboard", Scope: "read", Created: at}), apperr.Conflict)
	if _, err := s.RevokeToken(ctx, "dashboard", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	must(t, "same name after revoke", s.CreateToken(ctx, store.APIToken{Hash: "03", Name: "dashboard", Scope: "read", Created: at.Add(2 * time.Hour)}))
	list, err := s.Tokens(ctx)
	must(t, "list", err)
	if len(list) != 2 || list[0].Hash != "03" || list[1].Hash != "01" {
		t.Errorf("list = %+v, want the new token first, then the revoked one", list)
	}
}

// testSessions: a session reads back as stored, a logout ends it once, and an unknown one is NotFound.
func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := epoch()
	se := store.Session{Hash: "5e55", User: "alice", Role: "operator", Created: at, Expires: at.Add(12 * time.Hour)}
	must(t, "create", s.CreateSession(ctx, se))
	got, err := s.Session(ctx, "5e55")
	must(t, "read", err)
	if got != se {
		t.Errorf("session read back as %+v, want %+v", got, se)
	}
	wantCode(t, "the same session twice", s.CreateSession(ctx, se), apperr.Conflict)
	must(t, "end", s.EndSession(ctx, "5e55", at.Add(time.Hour)))
	must(t, "end again", s.EndSession(ctx, "5e55", at.Add(2*time.Hour)))
	must(t, "end unknown", s.EndSession(ctx, "0000", at.Add(2*time.Hour)))
	if got, _ := s.Session(ctx, "5e55"); !got.Ended.Equal(at.Add(time.Hour)) {
		t.Errorf("ended at %s, want the first logout %s", got.Ended, at.Add(time.Hour))
	}
	_, err = s.Session(ctx, "0000")
	wantCode(t, "unknown session", err, apperr.NotFound)
	wantCode(t, "no user", s.CreateSession(ctx, store.Session{Hash: "77", Role: "viewer", Created: at, Expires: at.Add(time.Hour)}), apperr.Invalid)
	wantCode(t, "expires before created", s.CreateSession(ctx, store.Session{Hash: "77", User: "bob", Role: "viewer", Created: at, Expires: at}), apperr.Invalid)
}

// testSessionsForgotten: sessions that closed more than a day before a new login are forgotten, so the
// table holds open work, not the history of logins; open ones stay.
func testSessionsForgotten(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := epoch()
	must(t, "old expired", s.CreateSession(ctx, store.Session{Hash: "01", User: "a", Role: "viewer", Created: at, Expires: at.Add(time.Hour)}))
	must(t, "old ended", s.CreateSession(ctx, store.Session{Hash: "02", User: "b", Role: "viewer", Created: at, Expires: at.Add(100 * time.Hour)}))
	must(t, "end", s.EndSession(ctx, "02", at.Add(time.Hour)))
	must(t, "long open", s.CreateSession(ctx, store.Session{Hash: "03", User: "c", Role: "viewer", Created: at, Expires: at.Add(100 * time.Hour)}))
	must(t, "new login", s.CreateSession(ctx, store.Session{Hash: "04", User: "d", Role: "viewer", Created: at.Add(26 * time.Hour), Expires: at.Add(30 * time.Hour)}))
	for hash, want := range map[string]bool{"01": false, "02": false, "03": true, "04": true} {
		_, err := s.Session(ctx, hash)
		if (err == nil) != want {
			t.Errorf("session %s kept = %v, want %v (%v)", hash, err == nil, want, err)
		}
	}
}
