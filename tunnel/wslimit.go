package tunnel

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// The caps of a ws or wss listener (issue 14): an HTTP server with
// keep-alives holds a file descriptor for every idle visitor until its
// IdleTimeout, so without a cap a few thousand idle connections take every
// descriptor of the process, and the edges' tunnels with them.
//
// What is counted is every connection the listener serves that is not (yet)
// a tunnel: decoy visitors, scanners, and tunnels before their token is
// checked. A connection whose upgrade carries a valid token leaves the
// count at once, so the caps never touch a session that is up; sessions are
// few (edges times their pool) and bounded by the tokens.
//
// At either cap, a new connection first takes the place of the oldest one
// kept alive between requests: that one has had its answer, and closing an
// idle keep-alive is what any HTTP server may do at any time (nginx does the
// same when its worker_connections run out). Only when no such connection
// is there is the new one closed, without an answer. Connections that sent
// nothing yet are never closed for another: they end by ReadHeaderTimeout.
const (
	// DefaultMaxConns is a listener's cap on connections that are not
	// tunnel sessions. Far above what a personal site's visitors need,
	// and a small share of a process's descriptors (Go raises the soft
	// limit to the hard one, typically 524288 under systemd), beside up to
	// FERRY_EDGE_MAX_CONNS clients and as many dials.
	DefaultMaxConns = 1024
	// DefaultMaxIdlePerIP caps, per IPv4 address or IPv6 /64, the
	// connections that are idle: open with no request yet, or kept alive
	// between requests. A browser opens six at most to one site; a CDN or
	// ingress in front of the listener, which sends everything from a few
	// addresses, gets its oldest idle ones closed and dials again, as it
	// does whenever a server closes keep-alives.
	DefaultMaxIdlePerIP = 32
)

// connLimiter counts the connections of a listener, by address, and picks
// which to close at the caps. Everything in it is under mu.
type connLimiter struct {
	max, maxIdlePerIP int

	mu    sync.Mutex
	conns map[*limitConn]struct{} // counted: not closed, not a tunnel
	idle  map[netip.Addr]int      // counted ones in stateNew or stateIdle, by ipKey
	seq   uint64                  // orders keep-alive idleness, oldest first
	// changed is closed, and replaced, at every change of the counts, so
	// that tests can wait for a state instead of sleeping.
	changed chan struct{}
}

func newConnLimiter(max, maxIdlePerIP int) *connLimiter {
	if max <= 0 {
		max = DefaultMaxConns
	}
	if maxIdlePerIP <= 0 {
		maxIdlePerIP = DefaultMaxIdlePerIP
	}
	return &connLimiter{
		max: max, maxIdlePerIP: maxIdlePerIP,
		conns: map[*limitConn]struct{}{}, idle: map[netip.Addr]int{}, changed: make(chan struct{}),
	}
}

// The states of a counted connection, from http.ConnState.
const (
	stateNew    = iota // accepted, no byte of a request yet
	stateActive        // a request is being read or answered
	stateIdle          // kept alive between requests: may be closed for another
)

// limitConn is a connection the limiter counts until it closes or becomes a
// tunnel. Its fields are under the limiter's mu.
type limitConn struct {
	net.Conn
	l       *connLimiter
	key     netip.Addr
	counted bool
	state   int
	since   uint64 // when it went idle, in l.seq
}

func (c *limitConn) Close() error {
	c.l.release(c)
	return c.Conn.Close()
}

// admit counts c, making room as the caps say, or closes it.
func (l *connLimiter) admit(c net.Conn) *limitConn {
	key := ipKey(c.RemoteAddr())
	var evicted []*limitConn
	l.mu.Lock()
	if l.idle[key] >= l.maxIdlePerIP {
		if v := l.oldestIdle(func(v *limitConn) bool { return v.key == key }); v != nil {
			l.uncount(v)
			evicted = append(evicted, v)
		}
	}
	if l.idle[key] >= l.maxIdlePerIP {
		l.mu.Unlock()
		c.Close()
		return nil
	}
	if len(l.conns) >= l.max {
		if v := l.oldestIdle(func(*limitConn) bool { return true }); v != nil {
			l.uncount(v)
			evicted = append(evicted, v)
		}
	}
	if len(l.conns) >= l.max {
		l.mu.Unlock()
		for _, v := range evicted {
			v.Conn.Close()
		}
		c.Close()
		return nil
	}
	lc := &limitConn{Conn: c, l: l, key: key, counted: true, state: stateNew}
	l.conns[lc] = struct{}{}
	l.idle[key]++
	l.changedLocked()
	l.mu.Unlock()
	// Closed under the server's feet: its goroutine for v reads an error,
	// and v's Close finds it uncounted already.
	for _, v := range evicted {
		v.Conn.Close()
	}
	return lc
}

// oldestIdle returns the counted connection kept alive longest of those
// that match, or nil. A scan: it runs only at a cap, over at most max.
func (l *connLimiter) oldestIdle(match func(*limitConn) bool) *limitConn {
	var oldest *limitConn
	for c := range l.conns {
		if c.state == stateIdle && match(c) && (oldest == nil || c.since < oldest.since) {
			oldest = c
		}
	}
	return oldest
}

func (l *connLimiter) uncount(c *limitConn) {
	if !c.counted {
		return
	}
	c.counted = false
	delete(l.conns, c)
	if c.state != stateActive {
		if l.idle[c.key]--; l.idle[c.key] == 0 {
			delete(l.idle, c.key)
		}
	}
	l.changedLocked()
}

// release stops counting c: it closed, or became a tunnel.
func (l *connLimiter) release(c *limitConn) {
	l.mu.Lock()
	l.uncount(c)
	l.mu.Unlock()
}

// connState is the http.Server's ConnState hook.
func (l *connLimiter) connState(nc net.Conn, s http.ConnState) {
	c := limitOf(nc)
	if c == nil {
		return
	}
	state := stateActive
	switch s {
	case http.StateNew:
		return // admit counted it so
	case http.StateIdle:
		state = stateIdle
	case http.StateClosed:
		l.release(c)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.counted || c.state == state {
		return
	}
	switch {
	case c.state == stateActive: // to idle
		l.idle[c.key]++
		l.seq++
		c.since = l.seq
	case state == stateActive:
		if l.idle[c.key]--; l.idle[c.key] == 0 {
			delete(l.idle, c.key)
		}
	}
	c.state = state
	l.changedLocked()
}

func (l *connLimiter) changedLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// limitOf finds the limitConn under c, through TLS and the cork.
func limitOf(c net.Conn) *limitConn { return under[*limitConn](c) }

// limitListener admits each accepted connection through its limiter; those
// refused are closed and never returned.
type limitListener struct {
	net.Listener
	l *connLimiter
}

func (ll limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := ll.l.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// ipKey is what the per-address cap counts by: the IPv4 address, or the
// IPv6 /64 (a subscriber usually holds a whole /64), as the edge's
// FERRY_EDGE_MAX_CONNS_PER_IP does.
func ipKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}
