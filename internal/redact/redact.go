// Package redact takes secrets out of URLs, DSNs and the messages that quote them, before they reach a
// log, an error, the audit log or a printed configuration. It is the one place that knows what a secret
// looks like there: the password of a URL's user information (postgres://user:PASSWORD@host/db), a query
// parameter named for a secret (?password=, ?access_token=, ?sslpassword=), and a password=VALUE pair
// of a key/value connection string.
//
// The configuration never holds secrets (they come from files or the environment), but a DSN given on
// the command line or a URL a source redirects to might, and the error of a failed connection quotes it.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret; it is what net/url's Redacted writes for a password.
const Mask = "xxxxx"

// secretWords are the parts of a query parameter's name that say its value is a secret.
var secretWords = []string{"password", "passwd", "secret", "token", "apikey", "api_key", "credential", "signature"}

func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// URL returns raw with its secrets masked, and raw itself when it carries none. Only the secrets change:
// the rest stays as written, escapes included. A string that does not parse as a URL is masked the
// safe way: everything between the first ':' after "://" and the last '@' is taken for a password.
func URL(raw string) string {
	out := raw
	if i := strings.Index(out, "://"); i >= 0 {
		rest := out[i+3:]
		auth := rest
		if _, err := url.Parse(raw); err == nil {
			// As net/url reads it: the authority ends at the path, query or fragment, and the user
			// information at the authority's last '@'.
			if end := strings.IndexAny(rest, "/?#"); end >= 0 {
				auth = rest[:end]
			}
		} else if end := strings.IndexAny(rest, " \t\n"); end >= 0 {
			auth = rest[:end]
		}
		if at := strings.LastIndex(auth, "@"); at >= 0 {
			if colon := strings.Index(auth[:at], ":"); colon >= 0 {
				out = out[:i+3] + auth[:colon+1] + Mask + rest[at:]
			}
		}
	}
	if q := strings.IndexByte(out, '?'); q >= 0 {
		out = out[:q] + queryParam.ReplaceAllStringFunc(out[q:], func(m string) string {
			p := queryParam.FindStringSubmatch(m)
			name, err := url.QueryUnescape(p[2])
			if err != nil {
				name = p[2]
			}
			if secretName(name) {
				return p[1] + p[2] + "=" + Mask
			}
			return m
		})
	}
	return out
}

var (
	// queryParam is ?name=value or &name=value.
	queryParam = regexp.MustCompile(`([?&;])([^=&;#\s]+)=([^&;#\s"'<>]*)`)
	// keyValue is password=value in a key/value connection string (host=db user=u password=p).
	keyValue = regexp.MustCompile(`(?i)\b((?:ssl)?pass(?:word|wd)\s*=\s*)('[^']*'|[^\s'"]+)`)
	// anURL is a URL quoted inside a message.
	anURL = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]+`)
)

// Text masks the secrets of every URL quoted in s, and password=VALUE pairs: for error messages and log
// lines made by code that does not know it quotes a secret (a driver's connection error, a transport's
// url.Error).
func Text(s string) string {
	s = anURL.ReplaceAllStringFunc(s, func(u string) string {
		// A URL at the end of a sentence keeps its full stop or closing bracket out of the parse.
		trimmed := strings.TrimRight(u, ".,;:)]}")
		return URL(trimmed) + u[len(trimmed):]
	})
	return keyValue.ReplaceAllString(s, "${1}"+Mask)
}

// Error returns err with its message passed through Text; errors.Is and errors.As still see the
// original. nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := Text(msg); red != msg {
		return redacted{msg: red, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }
