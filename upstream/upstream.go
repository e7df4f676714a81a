// Package upstream dials the destinations an origin (or standalone) allows:
// the routes of FERRY_ORIGIN_TARGETS and nothing else.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/ferryproxy/ferry/metrics"
)

// DialTimeout bounds the dial of one alternative, as the official proxy's
// connect timeout does.
const DialTimeout = 5 * time.Second

// DefaultHoldDown is how long an alternative that failed is tried only after
// the others.
const DefaultHoldDown = 30 * time.Second

// ErrUnknownRoute is returned for a route that is not configured.
var ErrUnknownRoute = errors.New("unknown route")

// Dialer dials routes. A route's alternatives are tried in order until one
// answers; one that failed lately goes last, so that new clients do not each
// wait out its timeout.
type Dialer struct {
	// Targets maps each route to its alternatives, HOST:PORT each.
	Targets map[string][]string
	// ProxyProtocol, 1 or 2, sends a PROXY protocol header of that version
	// with the client's address to the target, as the official proxy does.
	// Zero sends none.
	ProxyProtocol byte
	// Timeout bounds each alternative; zero means DialTimeout.
	Timeout time.Duration
	// HoldDown is how long a failed alternative goes last; zero means
	// DefaultHoldDown.
	HoldDown time.Duration
	// DialContext dials one address; nil means a net.Dialer's. A test seam.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	Metrics     *metrics.Metrics // nil counts nothing

	mu     sync.Mutex
	failed map[string]time.Time // alternative → when it failed
}

// Dial connects to route for a client at client (the zero value when
// unknown). The error wraps ErrUnknownRoute, or joins every alternative's
// failure.
func (d *Dialer) Dial(ctx context.Context, route, serverName string, client netip.AddrPort) (net.Conn, error) {
	alts, ok := d.Targets[route]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRoute, route)
	}
	dial := d.DialContext
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DialTimeout
	}
	var errs []error
	for _, addr := range d.order(alts) {
		actx, cancel := context.WithTimeout(ctx, timeout)
		c, err := dial(actx, "tcp", addr)
		cancel()
		if ctx.Err() == nil {
			// A dial cut short by its caller says nothing of the target.
			d.record(addr, err)
			d.Metrics.TargetDial(route, addr, err)
		}
		if err == nil {
			if err := d.sendProxyHeader(c, client); err != nil {
				c.Close()
				return nil, fmt.Errorf("route %s: %s: send PROXY header: %w", route, addr, err)
			}
			return c, nil
		}
		errs = append(errs, fmt.Errorf("route %s: dial %s: %w", route, addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// order returns alts with those that failed within the hold-down moved to
// the end, keeping the configured order otherwise.
func (d *Dialer) order(alts []string) []string {
	if len(alts) < 2 {
		return alts
	}
	hold := d.HoldDown
	if hold <= 0 {
		hold = DefaultHoldDown
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(alts))
	var late []string
	for _, a := range alts {
		if t, ok := d.failed[a]; ok && time.Since(t) < hold {
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
	d.failed[addr] = time.Now()
}

func (d *Dialer) sendProxyHeader(c net.Conn, client netip.AddrPort) error {
	if d.ProxyProtocol == 0 {
		return nil
	}
	h := &proxyproto.Header{Version: d.ProxyProtocol, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
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
		h = proxyproto.HeaderProxyFromAddrs(d.ProxyProtocol, net.TCPAddrFromAddrPort(client), net.TCPAddrFromAddrPort(dst))
	}
	_, err := h.WriteTo(c)
	return err
}
