package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"ferry/decoy"
	"ferry/internal/redact"
)

// HandshakeTimeout bounds a tunnel's setup: TCP or QUIC, TLS, the upgrade
// and the hellos.
const HandshakeTimeout = 10 * time.Second

// WSDialer dials a WebSocket tunnel listener: an origin's, or in reverse
// mode an edge's. Its upgrade looks like a browser's WebSocket (upgrade.go),
// through the TLSClient of tlsclient.go for wss.
type WSDialer struct {
	url        string
	host, path string // what the token is bound to: the Host header's, and the path
	serverName string
	end        End
	key        []byte
	client     *http.Client
}

// newWSDialer returns a dialer of u, a ws:// or wss:// URL. When u.Connect
// is set, it is the TCP address dialled instead of the URL's host; when
// u.SNI is set, it is the TLS server name sent instead of the URL's host.
// The HTTP Host header stays the URL's host either way, as a CDN in front of
// the origin needs.
func newWSDialer(u URL, end End) *WSDialer {
	return newWSDialerTLS(u, end, stdTLS{})
}

// newWSDialerTLS is newWSDialer with the TLS client of wss given: where a
// browser-fingerprint client would come in (tlsclient.go), and a test seam.
func newWSDialerTLS(u URL, end End, tlsClient TLSClient) *WSDialer {
	connect := u.Connect
	netDialer := &net.Dialer{KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if connect != "" {
			addr = connect
		}
		c, err := netDialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &corkConn{Conn: c}, nil
	}
	serverName := u.SNI
	if serverName == "" {
		serverName, _, _ = net.SplitHostPort(u.Host)
	}
	tr := &upgradeTransport{
		dial: dial,
		tls:  tlsClient,
		tlsConfig: &tls.Config{
			ServerName: serverName,
			MinVersion: tls.VersionTLS12,
			// The certificate is checked after the handshake (certValid):
			// an origin's own self-signed one is accepted when the hellos
			// bind to this TLS session instead.
			InsecureSkipVerify: true,
			// What a browser offers for a WebSocket (upgrade.go).
			NextProtos: []string{"http/1.1"},
		},
	}
	return &WSDialer{
		url: u.base(), host: u.Host, path: u.Path, serverName: serverName, end: end, key: helloKey(end.Secret),
		client: &http.Client{
			Transport: tr,
			// A browser's WebSocket follows no redirect, and a token is
			// for one host and path.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Dial connects and returns a session; ctx bounds only the handshake.
func (d *WSDialer) Dial(ctx context.Context) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	// The connection under the WebSocket, to find its cork and TLS.
	var conn net.Conn
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { conn = i.Conn }})
	h := http.Header{}
	browserHeaderValues(h)
	token := Token(d.end.Secret, time.Now(), d.host, d.path)
	h.Set("Cookie", tokenCookie(token))
	c, resp, err := websocket.Dial(ctx, d.url, &websocket.DialOptions{
		HTTPClient: d.client,
		HTTPHeader: h,
		// Offered by the header above, as Chrome offers it, and declined
		// by ferry's listeners; coder/websocket fails a dial whose server
		// accepts it, so a session is never compressed.
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			// An origin answers a refused token with its decoy page, so a
			// plain HTTP status here most likely means a wrong secret,
			// path or clock.
			return nil, fmt.Errorf("websocket dial %s: HTTP %d instead of an upgrade (wrong FERRY_SECRET or path, a front that rewrites the Host header or drops cookies, or a clock off by more than %v?)", d.url, resp.StatusCode, MaxSkew)
		}
		return nil, fmt.Errorf("websocket dial %s: %w", d.url, err)
	}
	var ekm []byte
	if tc, ok := conn.(TLSConn); ok && !certValid(&tls.ConnectionState{PeerCertificates: tc.PeerCertificates()}, d.serverName) {
		if ekm, err = tc.ExportKeyingMaterial(ExporterLabel, nil, 32); err != nil {
			c.CloseNow()
			return nil, fmt.Errorf("websocket %s: TLS exporter: %w", d.url, err)
		}
	}
	s, err := wsSession(ctx, c, conn, d.key, ekm, []byte(token), d.end, true)
	if err != nil {
		c.CloseNow()
		return nil, fmt.Errorf("websocket %s: %w", d.url, err)
	}
	return s, nil
}

// wsSession runs the hellos over c, the dialer's side when dialer is set,
// and then yamux; conn is the connection under the WebSocket, for its cork.
// ctx bounds the hellos and the wait for the control stream.
func wsSession(ctx context.Context, c *websocket.Conn, conn net.Conn, key, ekm, token []byte, end End, dialer bool) (Session, error) {
	mc := newMsgConn(ctx, c)
	hello := helloSecond
	if dialer {
		hello = helloFirst
	}
	pflags, err := hello(mc, key, ekm, token, end.flags())
	if err == nil {
		err = mc.handshakeDone()
	}
	if err != nil {
		return nil, errors.Join(err, ctx.Err())
	}
	return newYamux(ctx, newFrameConn(mc, c.CloseNow, conn), end, pflags, false)
}

// msgConn is a byte stream of binary messages, as websocket.NetConn is,
// without its deadlines: NetConn reads and writes under a context of its
// own, for which coder/websocket registers and removes a context.AfterFunc
// around every frame (48 of the 56 allocations of 128 KiB relayed).
// A session's reads and writes are unbounded and end by Close; only the
// hellos are bounded, by the handshake's context, whose end closes the
// WebSocket. Only one goroutine reads and one writes, as yamux does.
type msgConn struct {
	c   *websocket.Conn
	ctx context.Context
	r   io.Reader // the message being read
}

// newMsgConn bounds the hellos by ctx until handshakeDone. A message is
// read as it arrives, never held whole, so it needs no size limit (yamux
// frames may exceed coder/websocket's default of 32 KiB).
func newMsgConn(ctx context.Context, c *websocket.Conn) *msgConn {
	c.SetReadLimit(-1)
	return &msgConn{c: c, ctx: ctx}
}

// handshakeDone ends the bound of the hellos. The last hello's message must
// end with it: its reader keeps the handshake's context, which its caller
// is about to cancel.
func (m *msgConn) handshakeDone() error {
	if m.r != nil {
		switch _, err := m.r.Read(nil); err {
		case io.EOF:
		case nil: // bytes left in the message
			return fmt.Errorf("%w: the message runs on past the hello", ErrBadHello)
		default: // the handshake's context ended, or the connection
			return err
		}
		m.r = nil
	}
	m.ctx = context.Background()
	return nil
}

func (m *msgConn) Read(p []byte) (int, error) {
	for {
		if m.r == nil {
			typ, r, err := m.c.Reader(m.ctx)
			if err != nil {
				switch websocket.CloseStatus(err) {
				case websocket.StatusNormalClosure, websocket.StatusGoingAway:
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.MessageBinary {
				m.c.Close(websocket.StatusUnsupportedData, "binary messages only")
				return 0, fmt.Errorf("websocket: a %v message, not binary", typ)
			}
			m.r = r
		}
		n, err := m.r.Read(p)
		if err == io.EOF {
			m.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (m *msgConn) Write(p []byte) (int, error) {
	if err := m.c.Write(m.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WSListener serves tunnels at one path of one HTTP listener, and the decoy
// to every other request: an origin's, or in reverse mode an edge's.
type WSListener struct {
	ln       net.Listener
	path     string
	verifier *Verifier
	key      []byte
	decoy    http.Handler
	end      End
	log      *slog.Logger
	refusals *refusals

	queue
	srvs   []*http.Server // one per listener: two for wss (decoy.SplitTLS)
	limits *connLimiter
	decoys chan struct{} // a token for each decoy request in flight
	served sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup // Add only under mu while not closed

	DecoyHits, AuthFailures atomic.Int64
}

// listenWS serves ln for u, with TLS and o.Certificate when u is wss://. A
// request for u's path with a token that o.Verifier accepts becomes a
// session; anything else gets o.Decoy. Listen fills in o's defaults.
func listenWS(ln net.Listener, u URL, o ListenOptions) *WSListener {
	limits := newConnLimiter(o.MaxConns, o.MaxIdlePerIP)
	end := o.End
	l := &WSListener{
		path: u.Path, verifier: o.Verifier, key: helloKey(end.Secret), decoy: o.Decoy, end: end, log: end.Log,
		queue: newQueue(), limits: limits, decoys: make(chan struct{}, 2*limits.max),
		refusals: &refusals{log: end.Log, transport: u.Scheme, clientIPs: end.LogClientIPs},
	}
	// decoy.Listener under ws: it makes net/http's own answers nginx's.
	lns := []net.Listener{corkListener{limitListener{decoy.Listener(ln), limits}}}
	if u.Scheme == "wss" {
		// h2 and HTTP/1.1, as an ordinary HTTPS site offers: an h2 client
		// gets the decoy over HTTP/2 (net/http's server, wsh2.go), and
		// the tunnel's upgrade comes over HTTP/1.1, which edges ask for.
		// The decoy completes the handshakes, so that what net/http
		// writes inside TLS on HTTP/1.1 reads as nginx's too.
		h1, h2 := decoy.SplitTLS(corkListener{limitListener{ln, limits}}, &tls.Config{Certificates: []tls.Certificate{*o.Certificate}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
		lns = []net.Listener{h1, h2}
	}
	l.ln = lns[0]
	for _, ln := range lns {
		// The decoy's server: nginx's timeouts, headers and answers.
		srv := decoy.NewServer(http.HandlerFunc(l.serveHTTP), log.New(serverErrors{end.Log, end.LogClientIPs}, "", 0))
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		}
		srv.ConnState = limits.connState
		srv.Protocols = wsProtocols()
		srv.HTTP2 = wsHTTP2()
		l.srvs = append(l.srvs, srv)
		l.served.Add(1)
		go func() {
			defer l.served.Done()
			srv.Serve(ln)
		}()
	}
	return l
}

func (l *WSListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops serving; it waits for requests in flight, not for sessions.
func (l *WSListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	var err error
	for _, srv := range l.srvs {
		err = errors.Join(err, srv.Close())
	}
	l.served.Wait()
	l.handlers.Wait()
	l.refusals.close()
	return err
}

// serveDecoy serves r the decoy, if fewer than cap(l.decoys) strangers'
// requests (twice the connection cap) are in flight. HTTP/1.1 has one a
// connection; HTTP/2 up to 128 (wsHTTP2), each a goroutine with its
// buffers (about 13 KiB with a client that reads nothing), so without a
// bound of their own the listener's connections could hold 1.6 GiB. A
// request over it is reset (HTTP/2) or its connection closed (HTTP/1.1),
// as a server at its limits does.
func (l *WSListener) serveDecoy(w http.ResponseWriter, r *http.Request) {
	l.DecoyHits.Add(1)
	select {
	case l.decoys <- struct{}{}:
	default:
		panic(http.ErrAbortHandler)
	}
	defer func() { <-l.decoys }()
	l.decoy.ServeHTTP(w, r)
}

func (l *WSListener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.handlers.Add(1)
	l.mu.Unlock()
	defer l.handlers.Done()

	if r.URL.Path != l.path || !IsUpgrade(r) {
		l.serveDecoy(w, r)
		return
	}
	token, err := l.verifier.VerifyRequest(r)
	if err != nil {
		l.AuthFailures.Add(1)
		l.refusals.refused("tunnel refused", err, remoteAddr(r))
		l.serveDecoy(w, r)
		return
	}
	// A tunnel from here on: the listener's caps no longer count it (wslimit.go).
	conn, _ := r.Context().Value(connKey{}).(net.Conn)
	if lc := limitOf(conn); lc != nil {
		l.limits.release(lc)
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Declines the permessage-deflate an edge offers (upgrade.go).
		CompressionMode: websocket.CompressionDisabled,
		// An edge's Origin is the tunnel's own site, as a page's would
		// be, but through a front it may name the front's host; the token
		// is what counts.
		InsecureSkipVerify: true,
	})
	if err != nil {
		l.refusals.refused("websocket accept failed", err, remoteAddr(r))
		return
	}
	s, err := l.handshake(c, r, []byte(token))
	if err != nil {
		if authFailure(err) {
			l.AuthFailures.Add(1)
		}
		l.refusals.refused("tunnel refused after the upgrade", err, remoteAddr(r))
		c.CloseNow()
		return
	}
	// The hijacked connection outlives this handler: the session owns it.
	l.deliver(s)
}

func (l *WSListener) handshake(c *websocket.Conn, r *http.Request, token []byte) (Session, error) {
	ekm, err := exporter(r.TLS)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(l.ctx, HandshakeTimeout)
	defer cancel()
	conn, _ := r.Context().Value(connKey{}).(net.Conn)
	return wsSession(ctx, c, conn, l.key, ekm, token, l.end, false)
}

// remoteAddr is the IP address of r's client.
func remoteAddr(r *http.Request) netip.Addr {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr()
}

// serverErrors writes net/http's server errors at debug, with every address
// taken out unless keep: they name the peer ("TLS handshake error from
// ADDR"), a stranger as likely as an edge.
type serverErrors struct {
	log  *slog.Logger
	keep bool
}

func (e serverErrors) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if !e.keep {
		msg = redact.Addrs(msg)
	}
	e.log.Debug(msg)
	return len(p), nil
}

// IsUpgrade reports whether r asks for a WebSocket.
func IsUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
