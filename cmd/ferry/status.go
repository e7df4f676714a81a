package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync/atomic"

	"ferry/admin"
	"ferry/edge"
	"ferry/origin"
	"ferry/tunnel"
	"ferry/upstream"
)

// The stats page's status of each role (admin.Status), gathered from its
// servers at each view. Peers are named by host and port only: a tunnel
// URL's path may be all that keeps an origin's tunnel from strangers, and
// the page may be shown to anyone looking over the volunteer's shoulder.

// clientStatus is an edge's or standalone's.
type clientStatus struct {
	ctx       context.Context // the process's: once it ends, the listeners are closed
	listeners []admin.Listener
	maxConns  int
	perIP     int
	// tunnels and what its peers are, on an edge; nil in standalone.
	tunnels *edge.Tunnels
	origins []tunnel.URL // tunnels.Peers' URLs, in order
	reverse []tunnel.URL // FERRY_EDGE_TUNNEL_LISTEN, tunnels.Listeners' URLs

	// srv is the edge server, made after the admin endpoint starts
	// (serving); nil before.
	srv atomic.Pointer[edge.Server]
}

// newClientStatus is the status of an edge (tunnels not nil) or standalone
// with client listeners lns.
func newClientStatus(ctx context.Context, lns []edge.Listener, maxConns, perIP int, tunnels *edge.Tunnels, origins, reverse []tunnel.URL) *clientStatus {
	c := &clientStatus{ctx: ctx, maxConns: maxConns, perIP: perIP, tunnels: tunnels, origins: origins, reverse: reverse}
	for _, l := range lns {
		c.listeners = append(c.listeners, admin.Listener{Port: port(l.Addr()), Carries: carries(l)})
	}
	if tunnels != nil {
		for i, l := range tunnels.Listeners {
			c.listeners = append(c.listeners, admin.Listener{Port: port(l.Addr()), Carries: "tunnel, " + transport(c.reverse[i].Scheme) + ", origins dial in"})
		}
	}
	return c
}

// serving gives the status its edge server.
func (c *clientStatus) serving(srv *edge.Server) { c.srv.Store(srv) }

// phones is the clients connected now.
func (c *clientStatus) phones() int64 {
	if srv := c.srv.Load(); srv != nil {
		return srv.Stats().Active
	}
	return 0
}

func (c *clientStatus) status() admin.Status {
	st := admin.Status{Phones: c.phones(), Listeners: closedIf(c.listeners, c.ctx.Err() != nil)}
	if srv := c.srv.Load(); srv != nil {
		r := srv.Refusals()
		st.Refusals = []admin.Refusal{
			{Cap: "FERRY_EDGE_MAX_CONNS", Limit: strconv.Itoa(c.maxConns) + " at once", Count: r.MaxConns},
			{Cap: "FERRY_EDGE_MAX_CONNS_PER_IP", Limit: strconv.Itoa(c.perIP) + " from one address", Count: r.MaxConnsPerIP},
			{Cap: "fair share", Limit: "past 80% of FERRY_EDGE_MAX_CONNS, the addresses holding the most first", Count: r.FairShare},
		}
	}
	if c.tunnels == nil {
		return st
	}
	for i, u := range c.origins {
		p := admin.Peer{Name: u.Host, Transport: transport(u.Scheme), RTT: c.tunnels.RTT(i), Sessions: c.tunnels.SessionsUp(i)}
		if u.Connect != "" {
			p.Note = "dialled at " + u.Connect
		}
		if p.Sessions == 0 {
			p.Note = join(p.Note, "redialling")
		}
		if r := c.tunnels.PeerUnreachable(i); r != 0 {
			p.Note = join(p.Note, "cannot reach WhatsApp ("+r.String()+")")
		}
		st.Peers = append(st.Peers, p)
	}
	if len(c.reverse) > 0 {
		n := len(c.origins)
		st.Peers = append(st.Peers, admin.Peer{Name: "origins dialling in", Transport: transports(c.reverse),
			RTT: c.tunnels.RTT(n), Sessions: c.tunnels.SessionsUp(n)})
	}
	return st
}

// originStatus is an origin's.
type originStatus struct {
	ctx       context.Context
	srv       *origin.Server
	listeners []admin.Listener
	listen    []tunnel.URL // FERRY_ORIGIN_LISTEN
	edges     []tunnel.URL // FERRY_ORIGIN_EDGES
}

func newOriginStatus(ctx context.Context, srv *origin.Server, listen, edges []tunnel.URL) *originStatus {
	o := &originStatus{ctx: ctx, srv: srv, listen: listen, edges: edges}
	for i, l := range srv.Listeners {
		o.listeners = append(o.listeners, admin.Listener{Port: port(l.Addr()), Carries: "tunnel, " + transport(listen[i].Scheme)})
	}
	return o
}

func (o *originStatus) phones() int64 { return o.srv.Stats().Streams }

func (o *originStatus) status() admin.Status {
	s := o.srv.Stats()
	st := admin.Status{Phones: s.Streams, Sessions: s.Sessions, Listeners: closedIf(o.listeners, o.ctx.Err() != nil)}
	// The origin knows its edges by their sessions only: a line for each
	// listener they dial in on, then one for each edge it dials.
	sources := o.srv.Sources()
	for i, l := range o.listeners {
		st.Peers = append(st.Peers, admin.Peer{Name: fmt.Sprintf("edges on port %d", l.Port), Transport: transport(o.listen[i].Scheme),
			Sessions: sources[i].Sessions, RTT: sources[i].RTT})
	}
	for i, u := range o.edges {
		src := sources[len(o.listeners)+i]
		st.Peers = append(st.Peers, admin.Peer{Name: u.Host, Transport: transport(u.Scheme), Sessions: src.Sessions, RTT: src.RTT,
			Note: "dialled by this origin (reverse mode)"})
	}
	if s.EdgeDraining > 0 && len(st.Peers) > 0 {
		st.Peers[0].Note = join(st.Peers[0].Note, fmt.Sprintf("%d of all sessions from edges that drain", s.EdgeDraining))
	}
	return st
}

// carries says what a client listener carries: its route, TLS, a PROXY
// header.
func carries(l edge.Listener) string {
	s := l.Route
	if l.TLS {
		s += ", TLS"
	}
	if l.ProxyProtocol {
		s += ", PROXY header"
	}
	if l.DecoyOff {
		s += ", no web site"
	}
	return s
}

// transport names a tunnel URL's scheme for people.
func transport(scheme string) string {
	switch scheme {
	case "ws":
		return "WebSocket"
	case "wss":
		return "WebSocket over TLS"
	case "quic":
		return "QUIC"
	case "dns":
		return "DNS"
	}
	return scheme
}

// transports names the transports of urls, each once.
func transports(urls []tunnel.URL) string {
	var s string
	seen := map[string]bool{}
	for _, u := range urls {
		if t := transport(u.Scheme); !seen[t] {
			seen[t] = true
			s = join(s, t)
		}
	}
	return s
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + ", " + b
}

// port is the port of a listener's address, TCP or UDP.
func port(a net.Addr) int {
	_, p, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(p)
	return n
}

// closedIf is ls, marked closed when the process drains.
func closedIf(ls []admin.Listener, closed bool) []admin.Listener {
	if !closed {
		return ls
	}
	out := make([]admin.Listener, len(ls))
	for i, l := range ls {
		l.Closed = true
		out[i] = l
	}
	return out
}

// routesStatus is the stats page's view of up's routes, by name.
func routesStatus(up *upstream.Dialer) func() []admin.Route {
	return func() []admin.Route {
		down := map[string]upstream.RouteDown{}
		for _, d := range up.Unreachable() {
			down[d.Route] = d
		}
		var out []admin.Route
		for _, name := range slices.Sorted(maps.Keys(up.Targets)) {
			r := admin.Route{Name: name, Reachable: true}
			if d, ok := down[name]; ok {
				r = admin.Route{Name: name, Since: d.Since, Cause: d.Cause.Error()}
			}
			out = append(out, r)
		}
		return out
	}
}

// originNote says, when every origin an edge has a session with cannot
// reach WhatsApp on some route, which; "" otherwise.
func originNote(tunnels *edge.Tunnels) string {
	if r := tunnels.Unreachable(); r != 0 {
		return "the origin cannot reach WhatsApp (" + r.String() + ")"
	}
	return ""
}
