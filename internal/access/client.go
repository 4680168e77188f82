package access

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Client is what is known of the client behind a request: its address, whether it reached Spy Agency
// over TLS, and the host it asked for. Behind a reverse proxy that terminates TLS these come from the
// proxy's X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host, but only from a proxy that is
// trusted (server.trusted_proxies): anyone else could write those headers and claim to be this
// machine, or to have come over TLS.
type Client struct {
	Addr   netip.Addr // invalid when unknown
	Secure bool
	Host   string
}

// Proxies are the reverse proxies whose X-Forwarded-* headers are believed.
type Proxies struct {
	trusted []netip.Prefix
}

// ParseProxies reads addresses ("10.0.0.7") and networks ("10.76.0.0/16").
func ParseProxies(list []string) (Proxies, error) {
	var p Proxies
	for _, s := range list {
		s = strings.TrimSpace(s)
		if pre, err := netip.ParsePrefix(s); err == nil {
			p.trusted = append(p.trusted, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Proxies{}, fmt.Errorf("trusted proxy %q: want an address or a network such as 10.76.0.0/16", s)
		}
		p.trusted = append(p.trusted, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return p, nil
}

func (p Proxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, pre := range p.trusted {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Resolve says who the client is. From a trusted proxy, the client is the nearest address in
// X-Forwarded-For that is not itself a trusted proxy (read from the right: the entries to the left
// were written by whoever the client is, and prove nothing); from anyone else, the connection's peer.
func (p Proxies) Resolve(r *http.Request) Client {
	c := Client{Addr: remoteAddr(r), Secure: r.TLS != nil, Host: r.Host}
	if !c.Addr.IsValid() || !p.trusts(c.Addr) {
		return c
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A hop that is not an address: the client is past what can be known. Take the proxy
			// that wrote it, which at least is no loopback client.
			break
		}
		c.Addr = a.Unmap()
		if !p.trusts(c.Addr) {
			break
		}
	}
	if proto := lastValue(r.Header.Values("X-Forwarded-Proto")); proto != "" {
		c.Secure = strings.EqualFold(proto, "https")
	}
	if host := lastValue(r.Header.Values("X-Forwarded-Host")); host != "" {
		c.Host = host
	}
	return c
}

// lastValue is the value the nearest proxy wrote.
func lastValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	parts := strings.Split(vs[len(vs)-1], ",")
	return strings.TrimSpace(parts[len(parts)-1])
}

type clientKey struct{}

// WithClient records the resolved client in a request's context (the web does, first thing).
func WithClient(r *http.Request, c Client) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), clientKey{}, c))
}

// ClientOf is the request's client as resolved, or, when nothing resolved it, its connection's peer.
func ClientOf(r *http.Request) Client {
	if c, ok := r.Context().Value(clientKey{}).(Client); ok {
		return c
	}
	return Proxies{}.Resolve(r)
}

// Loopback says whether the request comes from this machine (through a trusted proxy, the client
// behind it must).
func Loopback(r *http.Request) bool {
	a := ClientOf(r).Addr
	return a.IsValid() && a.IsLoopback()
}

// CrossSite says whether a browser marked the request as coming from another site, or it names an
// origin other than the host it asked for.
func CrossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err != nil || !strings.EqualFold(u.Host, ClientOf(r).Host)
	}
	return false
}

// SafeNext is where a login may send the browser back to: a path on this server, never another site.
// Anything else ("https://evil.example", "//evil.example", "/\\evil.example", "javascript:...") is
// "/": the login's return address comes from a query string anyone can write.
func SafeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return "/"
	}
	if strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/auth/") {
		return "/"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil {
		return "/"
	}
	return next
}
