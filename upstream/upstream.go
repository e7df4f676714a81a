// Package upstream dials the destinations an origin (or standalone) allows:
// the routes of FERRY_ORIGIN_TARGETS and nothing else.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// DialTimeout bounds the dial of one alternative, as the official proxy's
// connect timeout does.
const DialTimeout = 5 * time.Second

// ErrUnknownRoute is returned for a route that is not configured.
var ErrUnknownRoute = errors.New("unknown route")

// Dialer dials routes. A route's alternatives are tried in order until one
// answers.
type Dialer struct {
	// Targets maps each route to its alternatives, HOST:PORT each.
	Targets map[string][]string
	// Timeout bounds each alternative; zero means DialTimeout.
	Timeout time.Duration
	// DialContext dials one address; nil means a net.Dialer's. A test seam.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial connects to route. The error wraps ErrUnknownRoute, or joins every
// alternative's failure.
func (d *Dialer) Dial(ctx context.Context, route string) (net.Conn, error) {
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
	for _, addr := range alts {
		actx, cancel := context.WithTimeout(ctx, timeout)
		c, err := dial(actx, "tcp", addr)
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("route %s: dial %s: %w", route, addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
