package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"

	"ferry/decoy"
)

// site serves the edge's web site on connections that the first-byte
// routing hands it, with net/http shaped as nginx by the decoy package: to
// a scanner every port of the edge is an ordinary nginx.
type site struct {
	plain, tls *http.Server
	plainLn    *handoff
	tlsLn      *handoff
	wg         sync.WaitGroup

	// Every connection handed over and not yet closed: http.Server's own
	// Shutdown and Close leave out connections a handler hijacked (a
	// reverse-proxied WebSocket), and the drain must end them too.
	mu        sync.Mutex
	conns     map[*siteConn]struct{}
	emptied   chan struct{} // made by shutdown, closed once conns is empty
	emptyOnce sync.Once
}

// newSite starts serving h. tlsConf is for clients that sent a TLS port
// something other than a ClientHello (the decoy's TLS listener then
// answers an HTTP request as nginx does: "The plain HTTP request was sent
// to HTTPS port"); nil when the edge has no TLS listener.
func newSite(h http.Handler, tlsConf *tls.Config) *site {
	s := &site{plainLn: newHandoff(), conns: map[*siteConn]struct{}{}}
	s.plain = newSiteServer(h)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.plain.Serve(decoy.Listener(s.plainLn))
	}()
	if tlsConf != nil {
		s.tlsLn = newHandoff()
		s.tls = newSiteServer(h)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.tls.Serve(decoy.TLSListener(s.tlsLn, tlsConf))
		}()
	}
	return s
}

// newSiteServer is the decoy's server, nginx's timeouts and all. A web
// server's errors are about strangers' connections: no line of them, and
// so no address, reaches the edge's log.
func newSiteServer(h http.Handler) *http.Server {
	return decoy.NewServer(h, nil)
}

// serve hands c to the web site, which closes it when done. A connection
// on a TLS port that did not begin with a ClientHello goes to the TLS
// server, so that its handshake fails as nginx's does.
func (s *site) serve(c *siteConn, tlsPort bool) {
	ln := s.plainLn
	if tlsPort && s.tlsLn != nil {
		ln = s.tlsLn
	}
	// Known to Close before any shutdown can see it in conns.
	c.site = s
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	var given net.Conn = c
	if _, ok := c.Conn.(*tls.Conn); ok {
		// TLS the edge terminated: the site sees it as HTTPS.
		given = tlsSiteConn{c}
	}
	if !ln.give(given) {
		c.Close()
	}
}

// shutdown closes idle visitors at once, and waits for the others until
// ctx ends, when it closes them.
func (s *site) shutdown(ctx context.Context) {
	servers := []*http.Server{s.plain}
	if s.tls != nil {
		servers = append(servers, s.tls)
	}
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
		}()
	}
	wg.Wait()
	s.wg.Wait()
	// Shutdown waits for none that a handler hijacked: wait for them
	// until ctx ends, then close them.
	s.mu.Lock()
	s.emptied = make(chan struct{})
	if len(s.conns) == 0 {
		s.emptyOnce.Do(func() { close(s.emptied) })
	}
	emptied := s.emptied
	s.mu.Unlock()
	select {
	case <-emptied:
		return
	case <-ctx.Done():
	}
	s.mu.Lock()
	left := make([]*siteConn, 0, len(s.conns))
	for c := range s.conns {
		left = append(left, c)
	}
	s.mu.Unlock()
	for _, c := range left {
		c.Close()
	}
}

// handoff is a net.Listener whose connections are handed to it, one at a
// time, by the edge's first-byte routing.
type handoff struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newHandoff() *handoff {
	return &handoff{conns: make(chan net.Conn), done: make(chan struct{})}
}

// give passes c to Accept, and reports false if the listener is closed.
func (h *handoff) give(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.closeOnce.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }

// siteConn is a connection handed to the web site: it reads pre, what the
// first-byte routing read already, before the connection's own bytes, and
// calls done once when it is first closed, so that the client leaves the
// edge's counts when net/http is done with it.
type siteConn struct {
	net.Conn
	pre  []byte
	once sync.Once
	done func()
	site *site
}

func (c *siteConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *siteConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		s := c.site
		s.mu.Lock()
		delete(s.conns, c)
		if s.emptied != nil && len(s.conns) == 0 {
			s.emptyOnce.Do(func() { close(s.emptied) })
		}
		s.mu.Unlock()
		c.done()
	})
	return err
}

// CloseWrite lets net/http's lingering close after an error answer (a FIN,
// then a pause, rather than a reset) reach the connection underneath.
func (c *siteConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// tlsSiteConn is a siteConn over TLS that the edge terminated, whose state
// net/http reads as it would a *tls.Conn's.
type tlsSiteConn struct{ *siteConn }

func (c tlsSiteConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(*tls.Conn).ConnectionState()
}
