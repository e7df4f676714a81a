package upstream

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// A route is down when every alternative of it has failed for DownAfter:
// every attempt (clients' dials and probes) since the latest that answered
// has failed, and that one started DownAfter ago. When none answered
// lately (a route nobody dialled, or the process just started), the count
// starts ProbeEvery before the first failure, as if a probe had answered
// then: a single failure after a long quiet is not enough. The origin is
// then not ready, says so once in its log and tells its edges; the first
// attempt that answers brings it back.
//
// Clients' dials are what tell most, and cost nothing; a route nobody
// dialled for ProbeEvery is probed (a TCP connect, closed at once, with no
// PROXY header and no byte sent), so that an idle origin also knows, and a
// down one finds out soon that the route is back. A probe of a busy route
// never happens: its clients' dials come first.
const (
	DefaultDownAfter  = 30 * time.Second
	DefaultProbeEvery = 4 * time.Second
)

// RouteDown is a route that is down: since when its alternatives fail, and
// the latest failure.
type RouteDown struct {
	Route string
	Since time.Time // when it stopped answering
	Cause error
}

// health is what the Dialer knows of a route's reachability.
type health struct {
	lastStart    time.Time // of the latest attempt, for probes
	lastOK       time.Time // start of the latest attempt that answered
	failingSince time.Time // when the route stopped answering (see above); zero while it answers
	cause        error     // the latest failure
	down         bool
	probing      bool
	name         string // a server name that answered lately: what a *.SUFFIX route is probed with
}

// Unreachable returns the routes that are down, by name.
func (d *Dialer) Unreachable() []RouteDown {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []RouteDown
	for route, h := range d.health {
		if h.down {
			out = append(out, RouteDown{Route: route, Since: h.failingSince, Cause: h.cause})
		}
	}
	slices.SortFunc(out, func(a, b RouteDown) int { return strings.Compare(a.Route, b.Route) })
	return out
}

// Changed returns a channel closed at the next change of Unreachable.
func (d *Dialer) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changedLocked()
}

func (d *Dialer) changedLocked() chan struct{} {
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	return d.changed
}

// kickLocked is the channel that wakes Watch.
func (d *Dialer) kickLocked() chan struct{} {
	if d.kick == nil {
		d.kick = make(chan struct{}, 1)
	}
	return d.kick
}

func (d *Dialer) notifyLocked() {
	close(d.changedLocked())
	d.changed = make(chan struct{})
}

// attempt records the outcome of an attempt on route that started at
// start: nil when an alternative answered, for a client whose server name
// was serverName; else the failure of all.
func (d *Dialer) attempt(route, serverName string, start time.Time, err error) {
	if err != nil && serverName != "" && onlyUnknownNames(err) {
		// A name that does not exist says nothing of the route, and a
		// stranger could send one on purpose.
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.healthLocked(route)
	if err != nil {
		if h.failingSince.IsZero() {
			every := d.ProbeEvery
			if every <= 0 {
				every = DefaultProbeEvery
			}
			h.failingSince = h.lastOK
			if s := start.Add(-every); s.After(h.failingSince) {
				h.failingSince = s
			}
			select {
			case d.kickLocked() <- struct{}{}: // Watch: a new time to mark it down
			default:
			}
		}
		h.cause = err
		return
	}
	if serverName != "" {
		h.name = serverName
	}
	if h.down {
		d.log().Info("route reaches WhatsApp again", "route", route, "down_for", time.Since(h.failingSince).Round(time.Second))
		d.notifyLocked()
	}
	h.lastOK = start
	h.failingSince, h.cause, h.down = time.Time{}, nil, false
}

func (d *Dialer) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// healthLocked returns route's health, made on first use.
func (d *Dialer) healthLocked(route string) *health {
	if d.health == nil {
		d.health = map[string]*health{}
	}
	h, ok := d.health[route]
	if !ok {
		h = &health{}
		d.health[route] = h
	}
	return h
}

// started notes that an attempt on route starts now.
func (d *Dialer) started(route string) time.Time {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.healthLocked(route).lastStart = now
	return now
}

// onlyUnknownNames reports whether every failure err joins is a lookup of
// a name that does not exist.
func onlyUnknownNames(err error) bool {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var dnsErr *net.DNSError
		if !errors.As(e, &dnsErr) || !dnsErr.IsNotFound {
			return false
		}
	}
	return true
}

// Watch keeps the routes' reachability until ctx ends: it probes the
// routes nobody dialled lately, marks down those whose alternatives have
// failed for DownAfter (one WARN each), and returns once its probes have
// ended; a negative ProbeEvery probes nothing, and only clients' dials
// tell. Without Watch, Unreachable stays empty.
func (d *Dialer) Watch(ctx context.Context) {
	every := cmp.Or(d.ProbeEvery, DefaultProbeEvery)
	after := cmp.Or(d.DownAfter, DefaultDownAfter)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	d.mu.Lock()
	for route := range d.Targets {
		// A first probe at once: an origin that starts without
		// WhatsApp is not ready DownAfter later, not ProbeEvery more.
		d.healthLocked(route).lastStart = start.Add(-every)
	}
	kick := d.kickLocked()
	d.mu.Unlock()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-kick:
		}
		now := time.Now()
		next := now.Add(max(every, DefaultProbeEvery))
		d.mu.Lock()
		for route, h := range d.health {
			if !h.failingSince.IsZero() && !h.down {
				if due := h.failingSince.Add(after); !now.Before(due) {
					h.down = true
					d.log().Warn("route cannot reach WhatsApp: every alternative failed", "route", route,
						"for", now.Sub(h.failingSince).Round(time.Second), "err", h.cause)
					d.notifyLocked()
				} else if due.Before(next) {
					next = due
				}
			}
			if h.probing || every < 0 {
				continue
			}
			if due := h.lastStart.Add(every); now.Before(due) {
				if due.Before(next) {
					next = due
				}
				continue
			}
			h.probing = true
			h.lastStart = now
			wg.Go(func() { d.probe(ctx, route, h.name, now) })
		}
		d.mu.Unlock()
		timer.Reset(time.Until(next))
	}
}

// probe connects to route's alternatives in turn until one answers, and
// closes it at once.
func (d *Dialer) probe(ctx context.Context, route, name string, start time.Time) {
	defer func() {
		d.mu.Lock()
		d.healthLocked(route).probing = false
		d.mu.Unlock()
	}()
	alts, err := candidates(route, d.Targets[route], name)
	if err != nil {
		// A *.SUFFIX route that no client dialled yet: nothing to probe.
		return
	}
	c, err := d.dialFirst(ctx, route, alts)
	if ctx.Err() != nil {
		return
	}
	if c != nil {
		c.Close()
	}
	d.attempt(route, name, start, err)
}
