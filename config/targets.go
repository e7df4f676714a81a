package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"

	"ferry/internal/hostport"
	"ferry/internal/redact"
	"ferry/tunnel"
)

// Targets is FERRY_ORIGIN_TARGETS parsed: the routes by name.
type Targets map[string]Route

// Route is one route: ROUTE=ALT[|ALT...][?proxy=off|v1|v2].
type Route struct {
	Alts []Alt // tried in order; at least one
	// Proxy is the PROXY protocol version that the route's ?proxy= option
	// asks for, if ProxySet; without the option the route follows
	// Targets.ProxyProtocol's rule.
	Proxy    ProxyProtocol
	ProxySet bool
}

// Alt is one alternative of a route: HOST:PORT, dialled as it is, or the
// pattern *.SUFFIX:PORT, which dials the client's TLS server name on PORT
// when MatchName("*.SUFFIX", name) allows it, and is skipped for a client
// without one.
type Alt struct {
	Host string // a host name, an IP address, or a pattern "*.SUFFIX"
	Port string
}

// IsPattern reports whether a is a *.SUFFIX pattern.
func (a Alt) IsPattern() bool { return strings.HasPrefix(a.Host, "*.") }

// String is a's form in FERRY_ORIGIN_TARGETS: HOST:PORT, [IPv6]:PORT or
// *.SUFFIX:PORT. It is also the name of a's metrics, so that a pattern
// counts as one target whatever names clients ask for.
func (a Alt) String() string { return net.JoinHostPort(a.Host, a.Port) }

// IsMedia reports whether the route named name carries media: it is named
// "media" or has a *.SUFFIX alternative.
func (r Route) IsMedia(name string) bool {
	if name == "media" {
		return true
	}
	for _, a := range r.Alts {
		if a.IsPattern() {
			return true
		}
	}
	return false
}

// ProxyProtocol returns the PROXY protocol version to send on route's
// connections, given def, FERRY_ORIGIN_PROXY_PROTOCOL's: the route's own
// ?proxy= option if it has one; otherwise none on a media route, since
// WhatsApp's HTTPS media servers take no PROXY header (the official proxy
// sends one on chat only); otherwise def.
func (t Targets) ProxyProtocol(route string, def ProxyProtocol) ProxyProtocol {
	r, ok := t[route]
	switch {
	case !ok:
		return 0
	case r.ProxySet:
		return r.Proxy
	case r.IsMedia(route):
		return 0
	}
	return def
}

// SendsProxy reports whether any route sends a PROXY header, given def,
// FERRY_ORIGIN_PROXY_PROTOCOL's: only then need edges send an origin its
// clients' addresses.
func (t Targets) SendsProxy(def ProxyProtocol) bool {
	for name := range t {
		if t.ProxyProtocol(name, def) != 0 {
			return true
		}
	}
	return false
}

// ParseTargets parses ROUTE=ALT[|ALT...][?proxy=off|v1|v2],... where each
// ALT is HOST:PORT or *.SUFFIX:PORT.
func ParseTargets(v string) (Targets, error) {
	out := Targets{}
	for _, part := range splitList(v) {
		name, spec, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q has no =", redact.Value(part))
		}
		if err := checkRoute(name); err != nil {
			return nil, fmt.Errorf("%q: %w", redact.Value(part), err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("route %q is listed twice", redact.Value(name))
		}
		// No host holds a '?', so the first one starts the options.
		alts, opts, hasOpts := strings.Cut(spec, "?")
		var r Route
		for _, s := range strings.Split(alts, "|") {
			a, err := parseAlt(s)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", redact.Value(part), err)
			}
			r.Alts = append(r.Alts, a)
		}
		if hasOpts {
			if err := r.parseOptions(opts); err != nil {
				return nil, fmt.Errorf("%q: %w", redact.Value(part), err)
			}
		}
		out[name] = r
	}
	if len(out) == 0 {
		return nil, errors.New("no target given")
	}
	return out, nil
}

func parseAlt(s string) (Alt, error) {
	if err := hostport.Check(s, false); err != nil {
		return Alt{}, err
	}
	host, port, _ := net.SplitHostPort(s)
	if !strings.Contains(host, "*") {
		return Alt{Host: host, Port: port}, nil
	}
	suffix, ok := strings.CutPrefix(host, "*.")
	if !ok {
		return Alt{}, fmt.Errorf("%q: a pattern is *.SUFFIX:PORT, with '*' alone as its first label", redact.Value(s))
	}
	if suffix == "" {
		return Alt{}, fmt.Errorf("%q: the pattern has no suffix after *.", redact.Value(s))
	}
	if strings.Contains(suffix, "*") {
		return Alt{}, fmt.Errorf("%q: a pattern has one '*', as its first label", redact.Value(s))
	}
	if err := tunnel.CheckServerName(suffix); err != nil {
		return Alt{}, fmt.Errorf("%q: the pattern's suffix is not a DNS name: %w", redact.Value(s), err)
	}
	if len(suffix)+2 > tunnel.MaxServerNameLen {
		return Alt{}, fmt.Errorf("%q: the pattern allows no name of %d bytes or fewer", redact.Value(s), tunnel.MaxServerNameLen)
	}
	return Alt{Host: host, Port: port}, nil
}

// parseOptions parses a route's options, those after its '?'.
func (r *Route) parseOptions(opts string) error {
	q, err := url.ParseQuery(opts)
	if err != nil {
		return fmt.Errorf("options %q: %w", redact.Value(opts), err)
	}
	if len(q) == 0 {
		return fmt.Errorf("no option after '?'")
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return fmt.Errorf("option %s is given %d times", k, len(vs))
		}
		switch k {
		case "proxy":
			if err := r.Proxy.Decode(vs[0]); err != nil {
				return fmt.Errorf("option proxy: %w (want off, v1 or v2)", err)
			}
			r.ProxySet = true
		default:
			return fmt.Errorf("unknown option %q (known: proxy)", redact.Value(k))
		}
	}
	return nil
}

func (t *Targets) Decode(v string) error {
	out, err := ParseTargets(v)
	if err != nil {
		return err
	}
	*t = out
	return nil
}

// String prints t as FERRY_ORIGIN_TARGETS reads it, routes in name order.
func (t Targets) String() string {
	names := make([]string, 0, len(t))
	for name := range t {
		names = append(names, name)
	}
	sort.Strings(names)
	routes := make([]string, 0, len(t))
	for _, name := range names {
		r := t[name]
		alts := make([]string, len(r.Alts))
		for i, a := range r.Alts {
			alts[i] = a.String()
		}
		s := name + "=" + strings.Join(alts, "|")
		if r.ProxySet {
			s += "?proxy=" + r.Proxy.String()
		}
		routes = append(routes, s)
	}
	return strings.Join(routes, ",")
}
