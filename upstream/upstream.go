// Package upstream dials the destinations an origin (or standalone) allows:
// the routes of FERRY_ORIGIN_TARGETS and nothing else.
package upstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"

	"ferry/config"
	"ferry/metrics"
	"ferry/tunnel"
)

// DialTimeout bounds the dial of one alternative, as the official proxy's
// connect timeout does.
const DialTimeout = 5 * time.Second

// DefaultHoldDown is how long an alternative that failed is tried only after
// the others.
const DefaultHoldDown = 30 * time.Second

// ErrUnknownRoute is returned for a route that is not configured.
var ErrUnknownRoute = errors.New("unknown route")

// ErrNameNotAllowed is returned, before anything is dialled, for a server
// name that no *.SUFFIX alternative of the route allows, for any server name
// on a route without such an alternative (a name never steers a chat
// route), and for a client without a name on a route that has nothing else
// to dial. The origin, not the edge, decides what is dialled: a stream
// header could be forged by anyone who holds the secret.
var ErrNameNotAllowed = errors.New("server name not allowed")

// maxFailed is how many failed alternatives the hold-down remembers before
// it forgets those whose hold-down is over; a pattern's alternatives are
// one per name, and in standalone the names are strangers', so it is a
// bound too: past it, new failures go unremembered (they are then tried in
// their configured place, as without a hold-down).
const maxFailed = 256

// Dialer dials routes. A route's alternatives are tried in order until one
// answers; one that failed lately goes last, so that new clients do not each
// wait out its timeout.
type Dialer struct {
	// Targets are the routes, FERRY_ORIGIN_TARGETS parsed: nothing else is
	// dialled.
	Targets config.Targets
	// ProxyProtocol, 1 or 2, sends a PROXY protocol header of that version
	// with the client's address to the target, as the official proxy does,
	// on routes without their own ?proxy= option, media routes excepted
	// (see config.Targets.ProxyProtocol). Zero sends none.
	ProxyProtocol byte
	// Timeout bounds each alternative; zero means DialTimeout, and a
	// negative one fails every dial at once.
	Timeout time.Duration
	// HoldDown is how long a failed alternative goes last; zero means
	// DefaultHoldDown, and a negative one puts none last.
	HoldDown time.Duration
	// DialContext dials one address; nil means a net.Dialer's. A test seam.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// DownAfter and ProbeEvery tune Watch (see health.go); zero means
	// DefaultDownAfter and DefaultProbeEvery, and a negative ProbeEvery
	// probes nothing.
	DownAfter, ProbeEvery time.Duration
	Metrics               *metrics.Metrics // nil counts nothing
	Log                   *slog.Logger     // Watch's lines; nil logs nothing

	mu      sync.Mutex
	failed  map[string]time.Time // address → when it failed
	health  map[string]*health   // route → its reachability
	changed chan struct{}        // closed and replaced when a route goes down or back up
	kick    chan struct{}        // wakes Watch; capacity 1
}

// Dial connects to route for a client at client (the zero value when
// unknown) whose TLS server name is serverName (empty for none). A
// *.SUFFIX:PORT alternative dials serverName on PORT if it matches, and is
// skipped for a client without a name; a HOST:PORT alternative dials as it
// is. The error wraps ErrUnknownRoute or ErrNameNotAllowed, or joins every
// alternative's failure.
func (d *Dialer) Dial(ctx context.Context, route, serverName string, client netip.AddrPort) (net.Conn, error) {
	r, ok := d.Targets[route]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRoute, route)
	}
	alts, err := candidates(route, r, serverName)
	if err != nil {
		return nil, err
	}
	version := byte(d.Targets.ProxyProtocol(route, config.ProxyProtocol(d.ProxyProtocol)))
	start := d.started(route)
	c, err := d.dialFirst(ctx, route, alts)
	if ctx.Err() == nil {
		// A dial cut short by its caller says nothing of the route.
		d.attempt(route, serverName, start, err)
	}
	if err != nil {
		return nil, err
	}
	if err := sendProxyHeader(c, version, client); err != nil {
		c.Close()
		return nil, fmt.Errorf("route %s: %s: send PROXY header: %w", route, c.RemoteAddr(), err)
	}
	return c, nil
}

// dialFirst dials alts, those that failed lately last, until one answers,
// and returns it, or every failure joined.
func (d *Dialer) dialFirst(ctx context.Context, route string, alts []candidate) (net.Conn, error) {
	dial := d.DialContext
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	timeout := cmp.Or(d.Timeout, DialTimeout)
	var errs []error
	for _, a := range d.order(alts) {
		actx, cancel := context.WithTimeout(ctx, timeout)
		c, err := dial(actx, "tcp", a.addr)
		cancel()
		if ctx.Err() == nil {
			// A dial cut short by its caller says nothing of the target.
			d.record(a.addr, err)
			d.Metrics.TargetDial(route, a.label, err)
		}
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("route %s: dial %s: %w", route, a.addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// candidate is an address to dial, and the alternative it comes from as
// metrics name it.
type candidate struct{ addr, label string }

// candidates returns the addresses route r dials for serverName, in the
// configured order, or an error wrapping ErrNameNotAllowed.
func candidates(route string, r config.Route, serverName string) ([]candidate, error) {
	if !slices.ContainsFunc(r.Alts, config.Alt.IsPattern) {
		// Nothing of the route dials a name, so none can steer it: a
		// chat route, or a media route written before patterns
		// (media=whatsapp.net:443), dials its alternatives as ever.
		serverName = ""
	}
	if serverName != "" {
		// The header's reader checks names too; standalone's come
		// straight from a ClientHello.
		if err := tunnel.CheckServerName(serverName); err != nil {
			return nil, fmt.Errorf("route %s: %w: %w", route, ErrNameNotAllowed, err)
		}
		// One spelling per name, for DNS and for the hold-down.
		serverName = strings.ToLower(serverName)
	}
	out := make([]candidate, 0, len(r.Alts))
	allowed := false
	for _, a := range r.Alts {
		label := a.String()
		switch {
		case !a.IsPattern():
			out = append(out, candidate{addr: label, label: label})
		case config.MatchName(a.Host, serverName):
			allowed = true
			out = append(out, candidate{addr: net.JoinHostPort(serverName, a.Port), label: label})
		}
	}
	switch {
	case serverName != "" && !allowed:
		return nil, fmt.Errorf("route %s: %w: %q", route, ErrNameNotAllowed, serverName)
	case len(out) == 0:
		return nil, fmt.Errorf("route %s: %w: the route dials only server names, and the client sent none", route, ErrNameNotAllowed)
	}
	return out, nil
}

// order returns alts with those that failed within the hold-down moved to
// the end, keeping the configured order otherwise.
func (d *Dialer) order(alts []candidate) []candidate {
	if len(alts) < 2 {
		return alts
	}
	hold := cmp.Or(d.HoldDown, DefaultHoldDown)
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]candidate, 0, len(alts))
	var late []candidate
	for _, a := range alts {
		if t, ok := d.failed[a.addr]; ok && time.Since(t) < hold {
			late = append(late, a)
		} else {
			out = append(out, a)
		}
	}
	return append(out, late...)
}

func (d *Dialer) record(addr string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.failed, addr)
		return
	}
	if d.failed == nil {
		d.failed = map[string]time.Time{}
	}
	now := time.Now()
	if _, known := d.failed[addr]; !known && len(d.failed) >= maxFailed {
		hold := cmp.Or(d.HoldDown, DefaultHoldDown)
		for a, t := range d.failed {
			if now.Sub(t) >= hold {
				delete(d.failed, a)
			}
		}
		if len(d.failed) >= maxFailed {
			return
		}
	}
	d.failed[addr] = now
}

// sendProxyHeader sends c a PROXY protocol header of version (none if 0)
// with the client's address.
func sendProxyHeader(c net.Conn, version byte, client netip.AddrPort) error {
	if version == 0 {
		return nil
	}
	h := &proxyproto.Header{Version: version, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	if client.IsValid() {
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		var dst netip.AddrPort
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			dst = ta.AddrPort()
		}
		dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
		// Both addresses of a header must be of one family.
		if client.Addr().Is4() != dst.Addr().Is4() {
			if client.Addr().Is4() {
				dst = netip.AddrPortFrom(netip.IPv4Unspecified(), dst.Port())
			} else {
				dst = netip.AddrPortFrom(netip.IPv6Unspecified(), dst.Port())
			}
		}
		h = proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(client), net.TCPAddrFromAddrPort(dst))
	}
	_, err := h.WriteTo(c)
	return err
}
