// Package e2e runs edges and origins together on loopback, with fake
// WhatsApp servers behind them, and checks what clients see.
package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ferry/cert"
	"ferry/config"
	"ferry/edge"
	"ferry/origin"
	"ferry/pool"
	"ferry/tunnel"
	"ferry/upstream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(logs.Main(m), append(dnsMain(),
		// toxiproxy (TestFaults) can leave a toxic's goroutine blocked
		// after the toxic is removed; it is the fault injector's, not ours.
		goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*NoopToxic).Pipe"))...)
}

const secret = "test-secret-0123456789-0123456789-abcdef"

// transports are the tunnel schemes every end-to-end case runs over.
var transports = []string{"ws", "wss", "quic"}

// forEachTransport runs f as a subtest per transport.
func forEachTransport(t *testing.T, f func(t *testing.T, scheme string)) {
	for _, scheme := range transports {
		t.Run(scheme, func(t *testing.T) { f(t, scheme) })
	}
}

// originProc is a running origin.
type originProc struct {
	srv    *origin.Server
	ws     *tunnel.WSListener // nil over QUIC
	addr   string             // HOST:PORT of its tunnel listener
	url    string             // the URL edges dial
	cancel context.CancelFunc
	done   chan struct{}

	// The sessions its listeners accepted, for tests that kill them.
	mu       sync.Mutex
	sessions []tunnel.Session
}

// startOrigin runs an origin on addr ("127.0.0.1:0" for any port) with the
// given targets.
func startOrigin(t testing.TB, scheme, addr string, targets map[string][]string) *originProc {
	t.Helper()
	return startOriginWith(t, scheme, addr, &upstream.Dialer{Targets: fixed(targets), Timeout: time.Second})
}

// fixed makes a route table of fixed alternatives, HOST:PORT each.
func fixed(routes map[string][]string) config.Targets {
	ts := config.Targets{}
	for name, alts := range routes {
		var r config.Route
		for _, a := range alts {
			host, port, _ := net.SplitHostPort(a)
			r.Alts = append(r.Alts, config.Alt{Host: host, Port: port})
		}
		ts[name] = r
	}
	return ts
}

// startOriginWith runs an origin that dials with up.
func startOriginWith(t testing.TB, scheme, addr string, up *upstream.Dialer) *originProc {
	t.Helper()
	p, urls := startOriginOn(t, up, listenAt{scheme, addr})
	p.url = urls[0]
	return p
}

// listenAt is a tunnel listener of a test origin: a scheme and an address
// ("127.0.0.1:0" for any port).
type listenAt struct{ scheme, addr string }

// startOriginOn runs one origin that dials with up and listens on every
// one of ls, and returns it with the URL of each listener; addr and ws are
// the first listener's.
func startOriginOn(t testing.TB, up *upstream.Dialer, ls ...listenAt) (*originProc, []string) {
	t.Helper()
	p := &originProc{}
	var lns []tunnel.Listener
	var urls []string
	for _, l := range ls {
		ln, url := listenTunnel(t, l.scheme, l.addr, originEnd(t, up))
		lns = append(lns, &trackedListener{Listener: ln, p: p})
		urls = append(urls, url)
	}
	p.ws, _ = lns[0].(*trackedListener).Listener.(*tunnel.WSListener)
	p.addr = lns[0].Addr().String()
	runOriginProc(t, p, &origin.Server{Listeners: lns, Upstream: up})
	return p, urls
}

// trackedListener keeps the sessions it accepts in its origin's list.
type trackedListener struct {
	tunnel.Listener
	p *originProc
}

func (l *trackedListener) Accept(ctx context.Context) (tunnel.Session, error) {
	s, err := l.Listener.Accept(ctx)
	if err == nil {
		l.p.mu.Lock()
		l.p.sessions = append(l.p.sessions, s)
		l.p.mu.Unlock()
	}
	return s, err
}

// killSessions closes, at once and without a drain, every session the
// origin's listeners accepted: as an origin that crashes, or whose link
// breaks, with its streams mid-transfer.
func (p *originProc) killSessions() {
	p.mu.Lock()
	ss := p.sessions
	p.sessions = nil
	p.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
}

// startReverseOrigin runs an origin that dials the edges at urls (reverse
// mode) and has no listener.
func startReverseOrigin(t testing.TB, up *upstream.Dialer, urls ...string) *originProc {
	t.Helper()
	srv := &origin.Server{Upstream: up, Backoff: pool.Backoff{Base: 5 * time.Millisecond, Max: 50 * time.Millisecond}}
	for _, u := range urls {
		srv.Edges = append(srv.Edges, pool.Peer{Name: u, Dialer: dialerAs(t, u, originEnd(t, up))})
	}
	return runOrigin(t, srv)
}

func runOrigin(t testing.TB, srv *origin.Server) *originProc {
	p := &originProc{}
	runOriginProc(t, p, srv)
	return p
}

// runOriginProc runs srv as p until the test ends.
func runOriginProc(t testing.TB, p *originProc, srv *origin.Server) {
	srv.Log = testLogger(t)
	if srv.Upstream.ProbeEvery == 0 {
		// No probes: these tests' targets count and read every
		// connection. Probes are tested in upstream and cmd/ferry.
		srv.Upstream.ProbeEvery = -1
	}
	p.srv, p.done = srv, make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.srv.Grace = time.Second
		p.srv.Run(ctx)
	}()
	t.Cleanup(p.stop)
}

// listenTunnel opens a tunnel listener for end on addr ("127.0.0.1:0" for
// any port) and returns it with the URL to dial it.
func listenTunnel(t testing.TB, scheme, addr string, end tunnel.End) (tunnel.Listener, string) {
	t.Helper()
	// Built rather than parsed, as port 0 is no listener URL of the
	// configuration's.
	u := tunnel.URL{Scheme: scheme, Host: addr}
	if scheme != "quic" {
		u.Path = "/tunnel"
	}
	ln, err := tunnel.Listen(u, tunnel.ListenOptions{End: end})
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ln.Addr().String()
	return ln, u.String()
}

// stop stops the origin and waits for it; it may be called more than once.
func (p *originProc) stop() {
	p.cancel()
	<-p.done
}

// edgeProc is a running edge.
type edgeProc struct {
	srv     *edge.Server
	tunnels *edge.Tunnels
	addrs   map[string]string // route → client listener HOST:PORT
	cancel  context.CancelFunc
	done    chan struct{}
}

// startEdge runs an edge with a plain client listener per route, each
// named for its route, tunnelling to the origin URL.
func startEdge(t testing.TB, originURL string, routes ...string) *edgeProc {
	t.Helper()
	var ls []lspec
	for _, r := range routes {
		ls = append(ls, lspec{name: r, route: r})
	}
	return startEdgeWith(t, originURL, &edge.Server{}, ls...)
}

// lspec is a client listener of a test edge. Unless routed, it relays
// every connection as it comes (?decoy=off), for tests whose clients send
// bytes of their own rather than WhatsApp's.
type lspec struct {
	name, route        string
	tls, proxy, routed bool
}

// startEdgeWith runs an edge with srv's limits and the given listeners,
// tunnelling to originURL, or with srv.Connect when that is set.
func startEdgeWith(t testing.TB, originURL string, srv *edge.Server, ls ...lspec) *edgeProc {
	t.Helper()
	var origins []pool.Peer
	if originURL != "" {
		origins = []pool.Peer{{Name: originURL, Dialer: dialer(t, originURL)}}
	}
	return startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: origins}}, srv, ls...)
}

// startEdgeOrigins runs an edge with tunnels (its origins and pool set;
// the test sets a fast backoff and the logger).
func startEdgeOrigins(t testing.TB, tunnels *edge.Tunnels, srv *edge.Server, ls ...lspec) *edgeProc {
	t.Helper()
	e := &edgeProc{addrs: map[string]string{}, done: make(chan struct{})}
	tunnels.Backoff = pool.Backoff{Base: 5 * time.Millisecond, Max: 50 * time.Millisecond}
	tunnels.Log = testLogger(t)
	e.tunnels = tunnels
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.Listeners = append(srv.Listeners, edge.Listener{
			Listener: ln, Route: l.route, TLS: l.tls, Media: l.route == config.MediaRoute, ProxyProtocol: l.proxy, DecoyOff: !l.routed,
		})
		e.addrs[l.name] = ln.Addr().String()
	}
	if srv.Connect == nil {
		srv.Connect = e.tunnels.Send
	}
	if srv.TLS == nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{crt}}
	}
	srv.Log = testLogger(t)
	e.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		defer close(e.done)
		e.srv.Grace = time.Second
		edge.Serve(ctx, e.srv, tunnels)
	}()
	t.Cleanup(e.stop)
	return e
}

func (e *edgeProc) stop() {
	e.cancel()
	<-e.done
}

// edgeEnd and originEnd describe the ends of test tunnels.
func edgeEnd(t testing.TB) tunnel.End { return tunnel.End{Secret: secret, Log: testLogger(t)} }

func originEnd(t testing.TB, up *upstream.Dialer) tunnel.End {
	return tunnel.End{Origin: true, ClientAddress: up.Targets.SendsProxy(config.ProxyProtocol(up.ProxyProtocol)), Secret: secret, Log: testLogger(t)}
}

// dialer returns an edge's tunnel dialer of an origin's URL.
func dialer(t testing.TB, originURL string) tunnel.Dialer {
	t.Helper()
	return dialerAs(t, originURL, edgeEnd(t))
}

// dialerAs returns a tunnel dialer of url for end, as FERRY_EDGE_ORIGINS
// or FERRY_ORIGIN_EDGES would make it.
func dialerAs(t testing.TB, url string, end tunnel.End) tunnel.Dialer {
	t.Helper()
	u, err := tunnel.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tunnel.NewDialer(u, end)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// dial connects a client to the edge's listener for route.
func (e *edgeProc) dial(t testing.TB, route string) *net.TCPConn {
	t.Helper()
	c, err := clientDialer.Dial("tcp", e.addrs[route])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// carrier is an origin that may carry a client, by the name via gives it.
type carrier struct {
	name string
	o    *originProc
}

// via connects a client to the edge's chat listener, echoes once within
// timeout, and says which of origins carried it, by the streams each
// counted: "none" when the echo failed or none counted one. The client stays
// open until the test ends, unless the caller closes it.
func (e *edgeProc) via(t testing.TB, timeout time.Duration, origins ...carrier) (net.Conn, string) {
	t.Helper()
	before := make([]int64, len(origins))
	for i, c := range origins {
		before[i] = c.o.srv.Stats().Streams
	}
	c := e.dial(t, "chat")
	c.SetDeadline(time.Now().Add(timeout))
	if got, err := echoOnce(c, []byte("ping")); err != nil || string(got) != "ping" {
		return c, "none"
	}
	c.SetDeadline(time.Time{})
	for i, o := range origins {
		if o.o.srv.Stats().Streams > before[i] {
			return c, o.name
		}
	}
	return c, "none"
}

// echoOnce writes msg on c and reads the same number of bytes back.
func echoOnce(c net.Conn, msg []byte) ([]byte, error) {
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	return got, err
}
