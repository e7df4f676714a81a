package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"ferry/dnstun"
	"ferry/internal/hostport"
	"ferry/internal/redact"
)

// URL is where a tunnel runs: a listener's address, or a peer to dial (an
// origin an edge dials, or in reverse mode an edge an origin dials). It is
// what FERRY_EDGE_ORIGINS, FERRY_ORIGIN_EDGES, FERRY_ORIGIN_LISTEN and
// FERRY_EDGE_TUNNEL_LISTEN hold; Listen and NewDialer turn it into a
// transport.
//
// A URL holds no secret (user information is refused), so that it can name
// a peer in logs and metrics.
type URL struct {
	Scheme  string // ws, wss, quic or dns
	Host    string // HOST:PORT, the port filled in from the scheme when a ws or wss dial URL leaves it out; a dns dial URL's zone
	Path    string // the HTTP path of the WebSocket, starting with /; empty for quic; /ZONE for a dns listener
	Connect string // dial this IP:PORT instead of resolving Host (dial URLs only)
	SNI     string // the TLS server name to send (dial URLs only)
	// Resolvers are a dns dial URL's resolvers, IP:PORT[,IP:PORT...];
	// empty means the system's (/etc/resolv.conf).
	Resolvers string
	// Rate is a dns dial URL's queries a second to each resolver; 0 means
	// dnstun.DefaultRate.
	Rate int
}

// base is the URL without ferry's options: what is dialled or served.
func (u URL) base() string { return u.Scheme + "://" + u.Host + u.Path }

// String is the URL as ParseURL or ParseListenURL reads it back.
func (u URL) String() string {
	s := u.base()
	q := url.Values{}
	if u.Connect != "" {
		q.Set("connect", u.Connect)
	}
	if u.SNI != "" {
		q.Set("sni", u.SNI)
	}
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	sep := "?"
	if u.Resolvers != "" {
		// Not escaped: IP:PORT lists read better as they were written.
		s += sep + "resolver=" + u.Resolvers
		sep = "&"
	}
	if u.Rate != 0 {
		s += sep + "rate=" + strconv.Itoa(u.Rate)
	}
	return s
}

// TLS reports whether the tunnel runs over TLS, and so its listener needs a
// certificate.
func (u URL) TLS() bool { return u.Scheme == "wss" || u.Scheme == "quic" || u.Scheme == "dns" }

// ParseURL parses a URL to dial, an origin's or an edge's:
// ws://HOST[:PORT]/PATH, wss://HOST[:PORT]/PATH or quic://HOST:PORT, with
// the query options connect=IP:PORT and sni=NAME; or
// dns://ZONE[?resolver=IP:PORT[,IP:PORT...]][&rate=N], N queries a second
// to each resolver at most.
func ParseURL(s string) (URL, error) {
	u, err := parseTunnel(s)
	if err != nil {
		return URL{}, err
	}
	if u.Scheme == "dns" {
		return parseDNSURL(s, u)
	}
	if u.Hostname() == "" {
		return URL{}, fmt.Errorf("%q has no host", redact.Value(s))
	}
	host := u.Host
	if u.Port() == "" && u.Scheme == "quic" {
		// QUIC has no well-known port to fall back on.
		return URL{}, fmt.Errorf("%q has no port", redact.Value(s))
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "wss" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	if err := hostport.Check(host, false); err != nil {
		return URL{}, fmt.Errorf("%q: %w", redact.Value(s), err)
	}
	t := URL{Scheme: u.Scheme, Host: host, Path: u.Path}
	for k, vs := range u.Query() {
		if len(vs) != 1 {
			return URL{}, fmt.Errorf("%q: option %s is given %d times", redact.Value(s), k, len(vs))
		}
		switch v := vs[0]; k {
		case "connect":
			if err := hostport.Check(v, false); err != nil {
				return URL{}, fmt.Errorf("%q: connect: %w", redact.Value(s), err)
			}
			t.Connect = v
		case "sni":
			if v == "" || strings.ContainsAny(v, ":/ ") {
				return URL{}, fmt.Errorf("%q: sni %q is not a server name", redact.Value(s), redact.Value(v))
			}
			t.SNI = v
		default:
			return URL{}, fmt.Errorf("%q: unknown option %q (known: connect, sni)", redact.Value(s), redact.Value(k))
		}
	}
	return t, nil
}

// ParseListenURL parses a tunnel listener: ws://[HOST]:PORT/PATH,
// wss://[HOST]:PORT/PATH, quic://[HOST]:PORT or dns://[HOST]:PORT/ZONE. An
// empty host means every address, IPv4 and IPv6.
func ParseListenURL(s string) (URL, error) {
	u, err := parseTunnel(s)
	if err != nil {
		return URL{}, err
	}
	if u.RawQuery != "" {
		return URL{}, fmt.Errorf("%q: a listener takes no options", redact.Value(s))
	}
	if err := hostport.Check(u.Host, true); err != nil {
		return URL{}, fmt.Errorf("%q: %w", redact.Value(s), err)
	}
	if u.Scheme == "dns" {
		z, err := dnstun.ParseZone(strings.TrimPrefix(u.Path, "/"))
		if err != nil {
			return URL{}, fmt.Errorf("%q: want dns://[HOST]:PORT/ZONE: %w", redact.Value(s), err)
		}
		u.Path = "/" + strings.TrimSuffix(string(z), ".")
	}
	return URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}, nil
}

// parseTunnel checks what dial and listener URLs share: the scheme, and a
// path only for WebSocket, / when it is left out.
func parseTunnel(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%q is not a tunnel URL", redact.Value(s))
	}
	switch u.Scheme {
	case "ws", "wss":
		if u.Path == "" {
			u.Path = "/"
		}
	case "quic":
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("%q: a quic URL has no path", redact.Value(s))
		}
		u.Path = ""
	case "dns":
	default:
		return nil, fmt.Errorf("%q: scheme %q is not ws, wss, quic or dns", redact.Value(s), redact.Value(u.Scheme))
	}
	if u.RawPath != "" || u.EscapedPath() != u.Path {
		// Path is kept decoded: an escaped one (%00 as much as %2F) would
		// neither print back as the URL given nor be dialled as written.
		return nil, fmt.Errorf("%q: the path must not be escaped", redact.Value(s))
	}
	return u, nil
}

// parseDNSURL parses dns://ZONE[?resolver=IP:PORT[,IP:PORT...]], u being
// s parsed.
func parseDNSURL(s string, u *url.URL) (URL, error) {
	const form = "want dns://ZONE?resolver=IP:PORT[,IP:PORT...][&rate=QUERIES_PER_SECOND]"
	if u.Port() != "" || (u.Path != "" && u.Path != "/") {
		return URL{}, fmt.Errorf("%q: %s (a zone, no port or path)", redact.Value(s), form)
	}
	z, err := dnstun.ParseZone(u.Hostname())
	if err != nil {
		return URL{}, fmt.Errorf("%q: %s: %w", redact.Value(s), form, err)
	}
	t := URL{Scheme: "dns", Host: strings.TrimSuffix(string(z), ".")}
	for k, vs := range u.Query() {
		if k != "resolver" && k != "rate" {
			return URL{}, fmt.Errorf("%q: unknown option %q (known: resolver, rate)", redact.Value(s), redact.Value(k))
		}
		if len(vs) != 1 {
			return URL{}, fmt.Errorf("%q: option %s is given %d times (list resolvers with commas)", redact.Value(s), k, len(vs))
		}
		if k == "rate" {
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 1 || n > 10000 {
				return URL{}, fmt.Errorf("%q: rate %q is not a number of queries a second, 1 to 10000", redact.Value(s), redact.Value(vs[0]))
			}
			t.Rate = n
			continue
		}
		var rs []string
		for r := range strings.SplitSeq(vs[0], ",") {
			ap, err := netip.ParseAddrPort(strings.TrimSpace(r))
			if err != nil {
				return URL{}, fmt.Errorf("%q: resolver %q is not IP:PORT", redact.Value(s), redact.Value(r))
			}
			rs = append(rs, ap.String())
		}
		t.Resolvers = strings.Join(rs, ",")
	}
	return t, nil
}
