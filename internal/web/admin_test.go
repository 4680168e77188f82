package web

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/store"
)

// TestAdminPage: an admin's page lists every token (never a token itself, nor its hash) with a revoke
// button for the live ones and shows the configuration; revoking from it needs the page's form token,
// takes effect at once, and is audited under the admin's name. Others see no Admin link.
func TestAdminPage(t *testing.T) {
	t.Parallel()
	aw := newAccessWorld(t)
	hs, _ := aw.serve(t, nil)
	cred := func(name string) credential {
		for _, c := range aw.creds {
			if c.name == name {
				return c
			}
		}
		t.Fatalf("no credential %s", name)
		return credential{}
	}
	admin, operator := cred("admin"), cred("operator")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(c credential, path string) (int, string) {
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		req.AddCookie(c.cookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, page := get(admin, "/admin")
	if code != 200 {
		t.Fatalf("admin page: %d", code)
	}
	for _, want := range []string{`id="token-dashboard"`, `id="token-tier0-prod"`, `id="token-old-script"`, "revoked", `action="/admin/tokens/calib-script/revoke"`, "addr: 127.0.0.1:8080", `id="nav-admin"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the admin page lacks %s", want)
		}
	}
	if strings.Contains(page, `action="/admin/tokens/old-script/revoke"`) {
		t.Error("a revoked token has a revoke button")
	}
	if regexp.MustCompile(`sa_[A-Za-z0-9_-]{20,}|[0-9a-f]{64}`).MatchString(page) {
		t.Error("the admin page shows a token or a token's hash")
	}
	if _, p := get(operator, "/"); strings.Contains(p, `id="nav-admin"`) {
		t.Error("an operator's page links to the admin page")
	}
	if code, _ := get(operator, "/admin"); code != http.StatusForbidden {
		t.Errorf("operator on /admin: %d, want 403", code)
	}
	revoke := func(c credential, formToken string) int {
		form := url.Values{"token": {formToken}}
		req, _ := http.NewRequest("POST", hs.URL+"/admin/tokens/calib-script/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", hs.URL)
		req.AddCookie(c.cookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := revoke(admin, "forged"); code != http.StatusForbidden {
		t.Errorf("revoke without the page's form token: %d, want 403", code)
	}
	if code := revoke(admin, admin.csrf); code != http.StatusSeeOther {
		t.Fatalf("revoke: %d, want a redirect back to the page", code)
	}
	_, page = get(admin, "/admin?revoked=calib-script")
	if !strings.Contains(page, "Token calib-script revoked.") || strings.Contains(page, `action="/admin/tokens/calib-script/revoke"`) {
		t.Error("after revoking, the page neither says so nor drops the button")
	}
	req, _ := http.NewRequest("GET", hs.URL+"/api/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer "+cred("token operate").token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the revoked token still works: %v %v", resp.StatusCode, err)
	}
	entries, err := aw.st.Audit(t.Context(), store.AuditQuery{Actor: "carol", Limit: 10})
	if err != nil || len(entries) != 1 || entries[0].Action != "token-revoke" || !strings.Contains(entries[0].Detail, "calib-script") {
		t.Errorf("audit: %+v %v", entries, err)
	}
}
