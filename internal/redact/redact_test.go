package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		// Nothing secret: unchanged, to the byte.
		{"https://cmsoms.cern.ch/agg/api/v1/runs?filter%5Brun_number%5D%5BGE%5D=1", "https://cmsoms.cern.ch/agg/api/v1/runs?filter%5Brun_number%5D%5BGE%5D=1"},
		{"sqlite:/var/lib/spyagency/spy.db", "sqlite:/var/lib/spyagency/spy.db"},
		{"postgres://spy@db.cern.ch:5432/pcl", "postgres://spy@db.cern.ch:5432/pcl"},
		{"", ""},
		{"not a url at all", "not a url at all"},
		// A password in the user information.
		{"postgres://u:hunter2@h/db", "postgres://u:xxxxx@h/db"},
		{"https://user:pw@t0.cern.ch/hook", "https://user:xxxxx@t0.cern.ch/hook"},
		{"postgres://u:p%40ss@h:5432/db?sslmode=require", "postgres://u:xxxxx@h:5432/db?sslmode=require"},
		{"postgres://u:@h/db", "postgres://u:xxxxx@h/db"},
		// A password with an '@' of its own: net/url takes the last '@' of the authority.
		{"postgres://u:a@b@h/db", "postgres://u:xxxxx@h/db"},
		// Secrets in the query, whatever their case; other parameters kept as written.
		{"postgres://h/db?user=u&password=hunter2&sslmode=verify-full", "postgres://h/db?user=u&password=xxxxx&sslmode=verify-full"},
		{"https://h/x?access_token=abc&run=392671", "https://h/x?access_token=xxxxx&run=392671"},
		{"https://h/x?API_KEY=abc", "https://h/x?API_KEY=xxxxx"},
		{"postgres://h/db?sslpassword=k", "postgres://h/db?sslpassword=xxxxx"},
		// Unparsable: masked by shape.
		{"postgres://u:p%zz@h/db", "postgres://u:xxxxx@h/db"},
		{"http://u:pa/ss@h:bad/x", "http://u:xxxxx@h:bad/x"},
	} {
		if got := URL(c.in); got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestURLNeverLeaks builds URLs around a password in every position net/url accepts one and checks that
// the password never survives.
func TestURLNeverLeaks(t *testing.T) {
	t.Parallel()
	const pw = "S3cr3t-pw"
	for _, u := range []string{
		(&url.URL{Scheme: "postgres", User: url.UserPassword("spy", pw), Host: "db:5432", Path: "/pcl"}).String(),
		(&url.URL{Scheme: "https", User: url.UserPassword("", pw), Host: "h"}).String(),
		(&url.URL{Scheme: "https", Host: "h", RawQuery: url.Values{"password": {pw}}.Encode()}).String(),
		(&url.URL{Scheme: "https", Host: "h", RawQuery: url.Values{"token": {pw}, "a": {"b"}}.Encode()}).String(),
		(&url.URL{Scheme: "https", Host: "h", RawQuery: url.Values{"client_secret": {pw}}.Encode()}).String(),
	} {
		if got := URL(u); strings.Contains(got, pw) {
			t.Errorf("URL(%q) = %q keeps the password", u, got)
		}
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	in := `dial postgres://spy:hunter2@db.cern.ch/pcl: refused; also "https://h/x?token=abc". retry host=db user=spy password=hunter3 dbname=pcl`
	got := Text(in)
	for _, secret := range []string{"hunter2", "hunter3", "abc"} {
		if strings.Contains(got, secret) {
			t.Errorf("Text kept %q: %s", secret, got)
		}
	}
	for _, kept := range []string{"postgres://spy:xxxxx@db.cern.ch/pcl: refused", `"https://h/x?token=xxxxx".`, "user=spy password=xxxxx dbname=pcl"} {
		if !strings.Contains(got, kept) {
			t.Errorf("Text lost %q: %s", kept, got)
		}
	}
	if s := "GET https://cmsweb.cern.ch/t0wmadatasvc/prod/hello: HTTP 503"; Text(s) != s {
		t.Errorf("Text changed a message without secrets: %s", Text(s))
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	if Error(nil) != nil {
		t.Error("Error(nil) is not nil")
	}
	plain := errors.New("no secret here")
	if Error(plain) != plain {
		t.Error("an error without secrets was wrapped")
	}
	err := fmt.Errorf("open postgres://u:hunter2@h/db: %w", fs.ErrNotExist)
	red := Error(err)
	if strings.Contains(red.Error(), "hunter2") || !strings.Contains(red.Error(), "postgres://u:xxxxx@h/db") {
		t.Errorf("Error = %v", red)
	}
	if !errors.Is(red, fs.ErrNotExist) {
		t.Error("the redacted error lost its chain")
	}
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{"postgres://u:hunter2@h/db", "https://h/x?token=abc&run=1", "sqlite:/tmp/a.db", "http://u:p%zz@h", "://@:"} {
		f.Add(s, "hunter2")
	}
	f.Fuzz(func(t *testing.T, raw, pw string) {
		_ = URL(raw)
		_ = Text(raw)
		// A password put where net/url puts one is always replaced, whatever it holds.
		u := (&url.URL{Scheme: "postgres", User: url.UserPassword("spy", pw), Host: "db", Path: "/pcl"}).String()
		if got := URL(u); got != "postgres://spy:"+Mask+"@db/pcl" {
			t.Fatalf("URL(%q) = %q", u, got)
		}
	})
}
