// Package edge accepts client connections and relays each one to its route:
// through a tunnel to an origin (ferry edge) or straight to the target
// (ferry standalone).
package edge

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"ferry/config"
	"ferry/decoy"
	"ferry/internal/redact"
	"ferry/metrics"
	"ferry/relay"
	"ferry/tunnel"
)

// Listener is a client listener and the route its connections take.
//
// Unless DecoyOff, every connection is routed by its first bytes (after the
// PROXY header and TLS, where the listener has them): a WhatsApp chat
// opening goes to Route, anything else to the edge's web site, so that to a
// scanner the port is an ordinary web server.
type Listener struct {
	net.Listener
	Route string
	// TLS terminates TLS, with the Server's certificate, on every
	// connection; a ClientHello for an allowed media name is passed
	// through to config.MediaRoute instead.
	TLS bool
	// Media passes a TLS ClientHello for an allowed media name through
	// untouched to Route, with the name; any other ClientHello is
	// terminated, and the client served the web site.
	Media bool
	// ProxyProtocol requires a PROXY protocol header (v1 or v2) first from
	// a sender in Server.ProxyFrom, and takes the client's address from it;
	// any other sender is a client of a plain listener (trust.go).
	ProxyProtocol bool
	// DecoyOff relays every connection as it comes (TLS terminated where
	// the listener has it, media passed through without a look), as the
	// official proxy does: for clients other than WhatsApp's.
	DecoyOff bool
}

// Name is the listener as FERRY_EDGE_LISTEN gives it, for logs and metrics.
func (l Listener) Name() string {
	scheme := "tcp"
	if l.TLS {
		scheme = "tls"
	}
	if l.ProxyProtocol {
		scheme = "proxy+" + scheme
	}
	name := scheme + "://" + l.Addr().String() + "/" + l.Route
	if l.DecoyOff {
		name += "?decoy=off"
	}
	return name
}

// Request is what a client asks of its route.
type Request struct {
	Route string
	// ServerName is the TLS server name of a client whose TLS is passed
	// through (media), for a route that dials the name it asks for; empty
	// otherwise.
	ServerName string
	// Client is the client's address, for the destination's PROXY header
	// when one is sent.
	Client netip.AddrPort
	// First is what the client sent first, to pass on intact; the caller
	// may reuse it once the call has returned.
	First []byte
}

// ConnectFunc connects a client to its route and sends its first bytes: it
// returns once the destination has taken them (through a tunnel, once the
// origin has answered that the target is connected), so that until then a
// failure loses the client nothing. The edge's is Tunnels.Send; standalone's
// is Direct.
type ConnectFunc func(ctx context.Context, r Request) (net.Conn, error)

// Direct is the ConnectFunc of a dial straight to the target (standalone):
// dial, then send the first bytes.
func Direct(dial func(ctx context.Context, route, serverName string, client netip.AddrPort) (net.Conn, error)) ConnectFunc {
	return func(ctx context.Context, r Request) (net.Conn, error) {
		c, err := dial(ctx, r.Route, r.ServerName, r.Client)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write(r.First); err != nil {
			c.Close()
			return nil, fmt.Errorf("route %s: send the first bytes: %w", r.Route, err)
		}
		return c, nil
	}
}

// DefaultHandshakeTimeout is how long a new client may take to send its
// PROXY header, finish its TLS handshake and send its first byte.
const DefaultHandshakeTimeout = 20 * time.Second

// Server accepts clients on its listeners and relays each to its route.
type Server struct {
	Listeners []Listener
	Connect   ConnectFunc
	// TLS holds the edge's certificates (Certificates or GetCertificate):
	// for tls listeners, for the ClientHellos a media listener does not
	// pass through, and for the web site. Required when a listener has TLS
	// or Media.
	TLS *tls.Config
	// Site is the web site that every client which does not speak
	// WhatsApp gets; nil means decoy's built-in page.
	Site http.Handler
	// MediaNames are the TLS server names (config.MatchName patterns) that
	// media and tls listeners pass through; none passes without them.
	MediaNames []string
	// MediaAfterChat passes media through only for a client address (IPv4,
	// or IPv6 /64) that had a chat connection within RecentChatWindow.
	MediaAfterChat bool
	// MaxConns caps concurrent clients; more are closed at once. Zero means
	// no cap.
	MaxConns int
	// MaxConnsPerIP caps concurrent clients from one IPv4 address or one
	// IPv6 /64. Zero means no cap, and fairness under pressure instead
	// (limit.go): from 80% of MaxConns, an address holding more than the
	// mean per address gets no more. A connection counts by its TCP peer
	// before anything is read, and by the PROXY header's client address
	// instead when a trusted sender sent it (trust.go).
	MaxConnsPerIP int
	// ProxyFrom are the senders whose PROXY headers ProxyProtocol
	// listeners believe. Nil means DefaultProxyFrom (loopback and private
	// ranges); an empty, non-nil list believes no one.
	ProxyFrom []netip.Prefix
	// HandshakeTimeout bounds a new client's PROXY header, TLS handshake and
	// first byte; zero means DefaultHandshakeTimeout, and a negative one
	// refuses every client (config.Duration admits none). WhatsApp clients
	// speak first, so a client that sends nothing is a scanner or a dead
	// peer.
	HandshakeTimeout time.Duration
	// Grace is how long clients may finish once Run's ctx has ended; zero
	// means DefaultGrace, and a negative Grace closes them at once.
	Grace time.Duration
	// Relay tunes every client's relay; the zero value holds the defaults.
	Relay   relay.Options
	Metrics *metrics.Metrics // nil counts nothing
	// LogClientIPs puts clients' addresses in the (debug) lines about them;
	// by default no log line holds one.
	LogClientIPs bool
	Log          *slog.Logger

	active   atomic.Int64
	refusals refusals     // over MaxConns, MaxConnsPerIP or the fair share
	rejected atomic.Int64 // bad PROXY header, failed TLS, or silent
	visits   atomic.Int64 // served the web site
	perIP    ipCounter
	trust    proxyproto.ConnPolicyFunc // from ProxyFrom, set by Run
	recent   recentChats
	site     *site
}

// Stats are the edge's client counters.
type Stats struct {
	Active   int64 // open now: relayed, being set up, or visiting the web site
	Refused  int64 // closed at once for a connection cap, since start
	Rejected int64 // closed for a bad PROXY header, a failed TLS handshake or silence, since start
	Visits   int64 // served the web site, since start
}

func (s *Server) Stats() Stats {
	return Stats{s.active.Load(), s.refusals.load().Total(), s.rejected.Load(), s.visits.Load()}
}

// DefaultGrace is how long live connections may finish at a drain.
const DefaultGrace = 30 * time.Second

// Run serves until ctx ends, then drains: it closes the listeners, lets live
// clients finish for up to Grace, closes those still open, and returns once
// every connection and goroutine it started has ended. It closes the
// listeners it was given in every case.
func (s *Server) Run(ctx context.Context) error {
	grace := max(0, cmp.Or(s.Grace, DefaultGrace))
	trust, err := trustPolicy(s.ProxyFrom)
	if err != nil {
		closeAll(s.Listeners)
		return err
	}
	s.trust = trust
	sides := make([]*tlsSide, len(s.Listeners))
	for i, l := range s.Listeners {
		if (l.TLS || l.Media && !l.DecoyOff) && s.TLS == nil {
			closeAll(s.Listeners)
			return fmt.Errorf("listener %s: no certificate (Server.TLS)", l.Name())
		}
		if l.TLS || l.Media && !l.DecoyOff {
			sides[i] = newTLSSide(s, !l.DecoyOff && len(s.MediaNames) > 0)
		}
	}
	h := s.Site
	if h == nil {
		h = decoy.New(decoy.Options{})
	}
	s.site = newSite(h, s.TLS)
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	s.refusals.kick = make(chan struct{}, 1)
	warnCtx, stopWarn := context.WithCancel(context.Background())
	warned := make(chan struct{})
	go func() {
		defer close(warned)
		s.warnRefusals(warnCtx)
	}()
	// Stopped as Run returns, once every client is done: a refusal in the
	// drain is still logged.
	defer func() {
		stopWarn()
		<-warned
	}()

	var conns sync.WaitGroup
	var accepts sync.WaitGroup
	for i, l := range s.Listeners {
		accepts.Add(1)
		go func() {
			defer accepts.Done()
			s.accept(connCtx, l, sides[i], s.Metrics.Listener(l.Name(), l.Route), &conns)
		}()
	}

	<-ctx.Done()
	for _, l := range s.Listeners {
		l.Close()
	}
	accepts.Wait()
	s.Log.Info("draining", "clients", s.active.Load(), "grace", grace)

	// Web visitors are no users to wait for: idle ones close at once,
	// others as they finish, all by the grace's end.
	siteCtx, cancelSite := context.WithTimeout(context.Background(), grace)
	defer cancelSite()
	drained := make(chan struct{})
	go func() {
		s.site.shutdown(siteCtx)
		conns.Wait()
		close(drained)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		s.Log.Info("grace period over, closing clients", "clients", s.active.Load())
		cancelConns()
		cancelSite()
		<-drained
	}
	return nil
}

func closeAll(ls []Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// accept runs one listener's accept loop until the listener is closed.
func (s *Server) accept(ctx context.Context, l Listener, side *tlsSide, m *metrics.Listener, conns *sync.WaitGroup) {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does
			// rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.Log.Warn("accept failed", "listener", l.Addr().String(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-ctx.Done():
				return
			}
		}
		delay = 0
		m.Accepted()
		// Admission, before a byte is read: a client that sends nothing
		// still counts against its address's cap, so silent connections
		// from one address cannot fill MaxConns for others. A trusted
		// PROXY sender (a load balancer, carrying everyone) counts by the
		// header's client address instead, once open has read it.
		trusted := l.ProxyProtocol && s.trusts(c)
		var peer netip.Addr // counted against MaxConnsPerIP here
		if !trusted {
			peer = addrPort(c.RemoteAddr()).Addr()
			if why := s.perIP.acquire(peer, s.MaxConnsPerIP, s.pressed(0)); why != capNone {
				s.refusals.add(why)
				m.Closed()
				m.Refused(metrics.RefusedCap)
				s.Log.Debug(why.refusal(), s.clientAttr(addrPort(c.RemoteAddr())))
				c.Close()
				continue
			}
		}
		// Listeners accept concurrently: count first, then check.
		if n := s.active.Add(1); s.MaxConns > 0 && n > int64(s.MaxConns) {
			s.active.Add(-1)
			s.perIP.release(peer)
			s.refusals.add(capMaxConns)
			m.Closed()
			m.Refused(metrics.RefusedCap)
			c.Close()
			continue
		}
		conns.Add(1)
		go func() {
			// One goroutine at a time runs this: a flag does what a
			// sync.OnceFunc would, without its allocations per client.
			counted := true
			uncount := func() {
				if counted {
					counted = false
					s.active.Add(-1)
					s.perIP.release(peer)
					m.Closed()
				}
			}
			finish := func() {
				uncount()
				conns.Done()
			}
			p, ok := s.open(ctx, c, l, trusted, side, m, uncount, finish)
			if !ok {
				return
			}
			// Connected in a frame of its own, after open's has gone:
			// the relay below runs on this goroutine for plain clients,
			// and a deeper stack at the dial would grow it for good.
			cl := s.dial(ctx, p, l, m)
			if cl == nil {
				finish()
				return
			}
			serve := func() {
				defer conns.Done()
				defer uncount()
				s.relay(ctx, cl, l, m)
				s.perIP.release(cl.counted)
			}
			// The relay waits, maybe for hours, on a fresh goroutine: the
			// setup (a TLS handshake, the stream's open, header and reply)
			// grew this one's stack, and a stack shrinks only by half per
			// garbage collection, which a process of idle clients rarely
			// runs. Measured with 5,000 idle plain clients over ws, in
			// place against fresh, in one sequence of runs: 15.5 and 15.6
			// KiB each against 14.1.
			go serve()
		}()
	}
}

// clientConn is a client connected to its route, ready to relay.
type clientConn struct {
	c, up net.Conn
	addr  netip.AddrPort
	// counted is the address open counted against MaxConnsPerIP (a
	// trusted PROXY header's), or none.
	counted netip.Addr
	first   int // bytes sent already
	start   time.Time
}

// pending is a client whose first bytes have said which route it takes.
type pending struct {
	c                 net.Conn
	client            netip.AddrPort
	counted           netip.Addr // as in clientConn
	route, serverName string
	first             []byte  // read already, to pass on intact
	buf               *[]byte // the pooled buffer first lies in, if it does
	start             time.Time
}

// open reads a client's PROXY header (if its listener has them and the
// sender is trusted) and TLS handshake (if its listener has them), and
// routes it by its first bytes. It reports false when it has closed the
// client instead, or handed it to the web site; otherwise the caller dials
// the route, then relays, then releases the header's client address from
// the per-IP count. uncount takes the client out of the active count;
// a refusal calls it before closing, so that the next client is counted
// without it. finish, called once whenever open reports false, uncounts the
// client and ends its place in the drain.
func (s *Server) open(ctx context.Context, c net.Conn, l Listener, trusted bool, side *tlsSide, m *metrics.Listener, uncount, finish func()) (pending, bool) {
	start := time.Now()
	timeout := cmp.Or(s.HandshakeTimeout, DefaultHandshakeTimeout)
	// One deadline covers the PROXY header, the TLS handshake and the first
	// bytes; the drain's end cuts them short too.
	deadline := start.Add(timeout)
	raw := c
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	handed := false
	defer func() {
		if !handed {
			finish()
		}
	}()
	if trusted {
		pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(timeout))
		// Set through pc: go-proxyproto restores the deadline it was told
		// of after reading the header, and would clear one set on c.
		pc.SetReadDeadline(deadline)
		if pc.ProxyHeader() == nil {
			s.reject(c, l, m, "bad or missing PROXY header")
			return pending{}, false
		}
		c = proxyConn{pc}
	} else {
		c.SetReadDeadline(deadline)
	}
	client := addrPort(c.RemoteAddr())
	var counted netip.Addr // the TCP peer was counted at the accept
	if trusted {
		// This client is in s.active already.
		if why := s.perIP.acquire(client.Addr(), s.MaxConnsPerIP, s.pressed(1)); why != capNone {
			s.refusals.add(why)
			m.Refused(metrics.RefusedCap)
			s.Log.Debug(why.refusal(), s.clientAttr(client))
			uncount()
			c.Close()
			return pending{}, false
		}
		counted = client.Addr()
	}
	opened := false
	defer func() {
		if !opened {
			s.perIP.release(counted)
		}
	}()
	// toSite hands the client to the web site, which closes it, and then
	// releases it from every count.
	toSite := func(c net.Conn, pre []byte, tlsPort bool) (pending, bool) {
		if !stop() {
			c.Close()
			return pending{}, false
		}
		c.SetDeadline(time.Time{})
		s.visits.Add(1)
		m.Site()
		opened, handed = true, true
		s.site.serve(&siteConn{Conn: c, pre: pre, done: func() {
			s.perIP.release(counted)
			finish()
		}}, tlsPort)
		return pending{}, false
	}

	route, serverName := l.Route, ""
	var first []byte // read already, to pass on intact
	if side != nil {
		hctx, cancel := context.WithDeadline(ctx, deadline)
		h := side.handshake(hctx, c, client)
		cancel()
		switch {
		case h.pass:
			first, serverName = h.rec, h.serverName
			if !l.Media {
				route = config.MediaRoute
			}
		case h.notTLS && !l.DecoyOff:
			// No ClientHello: the decoy's TLS listener answers it as
			// nginx does, an HTTP request on a tls port included
			// ("The plain HTTP request was sent to HTTPS port"); on a
			// media port an HTTP request gets the site in the clear,
			// as the port serves both.
			if l.Media && webOpening(h.rec) == OpeningHTTP {
				return toSite(c, h.rec, false)
			}
			return toSite(c, h.rec, true)
		case h.err != nil:
			s.reject(c, l, m, "TLS handshake failed", s.clientAttr(client))
			return pending{}, false
		default:
			// Terminated; on a media listener, a ClientHello for no
			// allowed media name, whose client gets the web site.
			c = h.tls
		}
	}
	if l.Media && side == nil {
		// DecoyOff: a media client's bytes go as they come.
		first = nil
	}

	// Wait for the client's first bytes before the route costs anything,
	// and read until they tell what the client is.
	var bp *[]byte
	if first == nil {
		bp = firstBytes.Get().(*[]byte)
		n := 0
		for {
			k, err := c.Read((*bp)[n:])
			n += k
			kind := OpeningChat
			if !l.DecoyOff {
				kind = Classify((*bp)[:n])
			}
			if kind == OpeningMore && err == nil && n < len(*bp) {
				continue
			}
			if kind == OpeningChat && n > 0 && (!l.Media || l.DecoyOff) {
				break
			}
			if n > 0 && (err == nil || errors.Is(err, io.EOF)) && !l.DecoyOff {
				// A web server answers what it has by the end of the
				// client's bytes.
				pre := webBytes((*bp)[:n])
				firstBytes.Put(bp)
				return toSite(c, pre, false)
			}
			firstBytes.Put(bp)
			s.reject(c, l, m, "no bytes", s.clientAttr(client))
			return pending{}, false
		}
		first = (*bp)[:n]
		if s.MediaAfterChat && !l.DecoyOff {
			s.recent.chat(client.Addr(), time.Now())
		}
	}
	c.SetReadDeadline(time.Time{})
	if !stop() {
		if bp != nil {
			firstBytes.Put(bp)
		}
		c.Close()
		return pending{}, false
	}
	opened, handed = true, true
	return pending{c: c, client: client, counted: counted, route: route, serverName: serverName, first: first, buf: bp, start: start}, true
}

// dial connects an opened client to its route. It returns nil when it has
// closed the client instead, having released its address.
func (s *Server) dial(ctx context.Context, p pending, l Listener, m *metrics.Listener) *clientConn {
	connecting := time.Now()
	up, err := s.Connect(ctx, Request{Route: p.route, ServerName: p.serverName, Client: p.client, First: p.first})
	// Written by now (and copied where a retry may need them): the buffer
	// goes back at once, not at the end of a connection that may last hours.
	if p.buf != nil {
		firstBytes.Put(p.buf)
	}
	if err != nil {
		m.Refused(metrics.RefusedRoute)
		s.Log.Debug("client not connected", "route", p.route, s.errAttr(err, p.c, p.client), s.clientAttr(p.client))
		relay.Abort(p.c)
		s.perIP.release(p.counted)
		return nil
	}
	m.Setup(time.Since(connecting))
	return &clientConn{c: p.c, up: up, addr: p.client, counted: p.counted, first: len(p.first), start: p.start}
}

// webBytes is what the web site reads of a client's first bytes b: b
// itself, or, when b cannot begin an HTTP request, b ending its request
// line, so that the site answers at once what it would answer to that line
// (400), as a web server that reads a request byte by byte (nginx) does,
// rather than wait for a line end that may never come. b is copied: it
// outlives the first read's buffer.
func webBytes(b []byte) []byte {
	if webOpening(b) == OpeningOther {
		return append(bytes.Clone(b), "\r\n\r\n"...)
	}
	return bytes.Clone(b)
}

// passMedia reports whether a ClientHello for name from client is passed
// through to the media route.
func (s *Server) passMedia(name string, client netip.AddrPort) bool {
	// A name the stream header cannot carry is no media server's.
	if tunnel.CheckServerName(name) != nil {
		return false
	}
	if !slices.ContainsFunc(s.MediaNames, func(p string) bool { return config.MatchName(p, name) }) {
		return false
	}
	return !s.MediaAfterChat || s.recent.recent(client.Addr(), time.Now())
}

// relay relays a client until either side ends.
func (s *Server) relay(ctx context.Context, cl *clientConn, l Listener, m *metrics.Listener) {
	o := s.Relay
	o.AToB, o.BToA = m.Bytes()
	if o.AToB != nil {
		o.AToB.Add(float64(cl.first))
	}
	res := relay.Pipe(ctx, cl.c, cl.up, o)
	m.Relayed(time.Since(cl.start))
	if res.Err != nil {
		s.Log.Debug("client relay ended", "route", l.Route, s.errAttr(res.Err, cl.c, cl.addr), "up", res.AToB+int64(cl.first), "down", res.BToA, s.clientAttr(cl.addr))
	}
}

// errAttr is err for a log line about a client's connection c: a network
// error names both ends of it, so without LogClientIPs the client's
// address (and the peer's it came through, a PROXY header's sender) is
// taken out of the text; the others, ours and a target's, stay.
func (s *Server) errAttr(err error, c net.Conn, client netip.AddrPort) slog.Attr {
	// The TCP connection under TLS and PROXY protocol has the peer's.
	for range 4 {
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = nc.NetConn()
	}
	var peer netip.Addr
	if c != nil {
		peer = addrPort(c.RemoteAddr()).Addr()
	}
	return redact.Err(err, s.LogClientIPs, client.Addr(), peer)
}

// clientAttr is the client's address for a log line when the operator asked
// for addresses in logs, and an empty attribute, which slog leaves out,
// otherwise.
func (s *Server) clientAttr(client netip.AddrPort) slog.Attr {
	if !s.LogClientIPs {
		return slog.Attr{}
	}
	return slog.String("client", client.String())
}

// firstBytes holds a client's first read until its route is connected; a
// WhatsApp client's first message fits.
var firstBytes = sync.Pool{New: func() any { b := make([]byte, 2048); return &b }}

func (s *Server) reject(c net.Conn, l Listener, m *metrics.Listener, why string, attrs ...any) {
	s.rejected.Add(1)
	m.Refused(metrics.RefusedHandshake)
	// Scanners are rejected by the thousand: build the line only if it is
	// written.
	if s.Log.Enabled(context.Background(), slog.LevelDebug) {
		s.Log.Debug("client rejected", append([]any{"listener", l.Name(), "why", why}, attrs...)...)
	}
	c.Close()
}

// proxyConn gives a PROXY protocol connection the half-close the relay uses,
// and the relay's reset a way to its TCP connection.
type proxyConn struct{ *proxyproto.Conn }

func (c proxyConn) NetConn() net.Conn { return c.Raw() }

func (c proxyConn) CloseWrite() error {
	if tc, ok := c.TCPConn(); ok {
		return tc.CloseWrite()
	}
	return nil
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
