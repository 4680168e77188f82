package app

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// A real OIDC provider for the login tests: zitadel's OpenID provider (github.com/zitadel/oidc/v3, its
// runnable example server and in-memory storage), served in process on loopback. It speaks the whole
// protocol (discovery, the authorization endpoint, PKCE, the token endpoint, signed ID tokens, keys);
// the test adds only its users and a groups claim in the ID token, as CERN SSO adds cern_roles.

// idpUser is a person the provider knows.
type idpUser struct {
	name, password string
	groups         []string
}

// idpUsers is the provider's user store.
type idpUsers map[string]*storage.User

func (u idpUsers) GetUserByID(id string) *storage.User { return u[id] }

func (u idpUsers) GetUserByUsername(name string) *storage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}

func (u idpUsers) ExampleClientID() string { return storage.ServiceUserID }

// idpStorage is the example's storage with a groups claim and the user's name in the ID token.
type idpStorage struct {
	*storage.Storage
	users  idpUsers
	groups map[string][]string
}

func (s *idpStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if u := s.users.GetUserByID(req.GetSubject()); u != nil {
		ui.PreferredUsername = u.Username
	}
	ui.AppendClaims("groups", s.groups[req.GetSubject()])
	return nil
}

// startIdP serves the provider on ln for one client, whose callback is redirect.
func startIdP(t *testing.T, ln net.Listener, clientID, secret, redirect string, people []idpUser) string {
	t.Helper()
	issuer := "http://" + ln.Addr().String() + "/"
	users := idpUsers{}
	groups := map[string][]string{}
	for _, p := range people {
		id := "u-" + p.name
		users[id] = &storage.User{ID: id, Username: p.name, Password: p.password, FirstName: p.name, LastName: "Tester",
			Email: p.name + "@cern.example", EmailVerified: true, PreferredLanguage: language.English}
		groups[id] = p.groups
	}
	st := &idpStorage{Storage: storage.NewStorageWithClients(users, map[string]*storage.Client{
		clientID: storage.WebClient(clientID, secret, redirect),
	}), users: users, groups: groups}
	srv := &http.Server{Handler: exampleop.SetupServer(issuer, st, nil, false), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return issuer
}
