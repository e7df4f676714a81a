package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
)

// The edge's WebSocket upgrade is sent as Chrome sends a page's
// `new WebSocket(url)`: whoever ends TLS in front of the origin (a CDN, an
// ingress) or reads a ws:// tunnel on the wire sees a browser's opening
// handshake, not a Go program's. That means:
//   - ALPN http/1.1 only in the ClientHello (a browser opens WebSockets over
//     HTTP/1.1 unless it already holds an h2 connection to the host that
//     offers RFC 8441), set by the dialer's tls.Config;
//   - the header set, order and spelling of browserHeaders, with the
//     values of browserHeaderValues: net/http cannot send that (it writes
//     Host and User-Agent first, then the rest sorted, and spells
//     "Sec-Websocket-Key"), so upgradeTransport writes the request itself
//     and reads the answer with net/http's own http.ReadResponse;
//   - the token in a Cookie (token.go), where a page's WebSocket carries
//     what it proves itself with: a browser's WebSocket can send no
//     Authorization header;
//   - permessage-deflate offered as Chrome offers it, and the session
//     uncompressed all the same: ferry's listeners decline it (their
//     AcceptOptions disable compression), and coder/websocket, which the
//     dialer tells to compress nothing, fails the dial rather than run
//     compressed if a server accepted it.

// BrowserUserAgent is the User-Agent of the edge's upgrade: a current
// stable Chrome's on Windows, in the reduced form Chrome has sent since 2023
// (only the major version is real). Refresh it with every few Chrome
// releases: a version far behind stable stands out. 158 was stable in
// late November 2026 (two-week releases since 153 on 2026-09-08).
const BrowserUserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/158.0.0.0 Safari/537.36"

// browserHeaders are the header lines of Chrome's WebSocket opening
// handshake after Host, in its order and spelling. Cookie is there only
// when the page's site has cookies, as the token makes it.
var browserHeaders = [...]string{
	"Connection",
	"Pragma",
	"Cache-Control",
	"User-Agent",
	"Upgrade",
	"Origin",
	"Sec-WebSocket-Version",
	"Accept-Encoding",
	"Accept-Language",
	"Cookie",
	"Sec-WebSocket-Key",
	"Sec-WebSocket-Extensions",
}

// browserHeaderValues sets the values of browserHeaders that are always
// the same; coder/websocket sets Connection, Upgrade, Sec-WebSocket-Version
// and -Key, the dialer the Cookie, and upgradeRequest the Origin.
func browserHeaderValues(h http.Header) {
	h.Set("Pragma", "no-cache")
	h.Set("Cache-Control", "no-cache")
	h.Set("User-Agent", BrowserUserAgent)
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Accept-Language", "en-US,en;q=0.9")
	h.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
}

// browserOrigin is the Origin a page of the tunnel's own site would send:
// the request's scheme and host.
func browserOrigin(scheme, host string) string {
	if scheme == "wss" || scheme == "https" {
		return "https://" + host
	}
	return "http://" + host
}

// upgradeTransport is the http.RoundTripper of the ws dialer: one new
// connection per request (a tunnel's upgrade is its only request), TLS
// through a TLSClient for https, the request written as Chrome writes it.
type upgradeTransport struct {
	// dial makes the TCP connection (connect= and the cork are its
	// business).
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	tls       TLSClient
	tlsConfig *tls.Config
}

// RoundTrip sends req on a connection of its own and returns the answer.
// httptrace's GotConn, if req's context has it, gets the connection (the
// TLSConn for https). req's context bounds everything up to the answer's
// header; a 101's body is then the connection itself, for the WebSocket,
// and any other answer's body closes the connection when closed.
func (t *upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	ctx := req.Context()
	port := req.URL.Port()
	if port == "" {
		port = defaultPort(req.URL.Scheme)
	}
	c, err := t.dial(ctx, "tcp", net.JoinHostPort(req.URL.Hostname(), port))
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn := c
	if req.URL.Scheme == "https" {
		tc, err := t.tls.Handshake(ctx, c, t.tlsConfig)
		if err != nil {
			return nil, err
		}
		conn = tc
	}
	if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: conn})
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	resp, err := exchange(conn, req)
	if !stop() {
		// ctx ended and closed conn: whatever exchange got is moot.
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return resp, nil
}

func exchange(conn net.Conn, req *http.Request) (*http.Response, error) {
	head, err := upgradeRequest(req)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(conn, head); err != nil {
		return nil, fmt.Errorf("send the upgrade request: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("read the answer to the upgrade: %w", err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		resp.Body = upgradedConn{Conn: conn, r: br}
	} else {
		resp.Body = closingBody{resp.Body, conn}
	}
	return resp, nil
}

// upgradeRequest is req's head as Chrome writes a WebSocket's: the request
// line, Host, then browserHeaders in order. The Host, and the Origin
// derived from it, drop a default port, as browsers do. Any header of req
// that browserHeaders lacks is an error: the request would not be a
// browser's.
func upgradeRequest(req *http.Request) (string, error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if h, port, err := net.SplitHostPort(host); err == nil && port == defaultPort(req.URL.Scheme) {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	var b strings.Builder
	b.WriteString("GET " + req.URL.RequestURI() + " HTTP/1.1\r\nHost: " + host + "\r\n")
	known := map[string]bool{}
	for _, name := range browserHeaders {
		known[http.CanonicalHeaderKey(name)] = true
		vs := req.Header.Values(name)
		if name == "Origin" && len(vs) == 0 {
			vs = []string{browserOrigin(req.URL.Scheme, host)}
		}
		for _, v := range vs {
			b.WriteString(name + ": " + v + "\r\n")
		}
	}
	for name, vs := range req.Header {
		if !known[name] {
			return "", fmt.Errorf("upgrade request: header %s is not one a browser's WebSocket sends", name)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return "", fmt.Errorf("upgrade request: header %s has a line break", name)
			}
		}
	}
	b.WriteString("\r\n")
	return b.String(), nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// upgradedConn is a 101's body: the connection, with the bytes read past
// the answer's header first.
type upgradedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c upgradedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// closingBody closes the connection with the body of an answer that is not
// an upgrade: the connection serves one request only.
type closingBody struct {
	io.ReadCloser
	conn net.Conn
}

func (b closingBody) Close() error {
	b.ReadCloser.Close()
	return b.conn.Close()
}
