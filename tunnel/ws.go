package tunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// HandshakeTimeout bounds a WebSocket dial: TCP, TLS and the upgrade.
const HandshakeTimeout = 10 * time.Second

// WSDialer dials an origin's WebSocket listener and runs the edge's side of a
// yamux session on it.
type WSDialer struct {
	url    string
	secret string
	log    *slog.Logger
	client *http.Client
}

// NewWSDialer returns a dialer of rawURL (ws://HOST[:PORT]/PATH or
// wss://...). When connect is set, it is the TCP address dialled instead of
// the URL's host; when sni is set, it is the TLS server name sent instead of
// the URL's host. The HTTP Host header stays the URL's host either way, as a
// CDN in front of the origin needs.
func NewWSDialer(rawURL, connect, sni, secret string, log *slog.Logger) (*WSDialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, fmt.Errorf("tunnel URL %q: want ws:// or wss://", rawURL)
	}
	netDialer := &net.Dialer{KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if connect != "" {
			addr = connect
		}
		return netDialer.DialContext(ctx, network, addr)
	}
	serverName := sni
	if serverName == "" {
		serverName = u.Hostname()
	}
	tr := &http.Transport{
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			ServerName: serverName,
			MinVersion: tls.VersionTLS12,
			// The tunnel's authentication does not rest on the certificate:
			// the token proves the edge to the origin, and an origin's own
			// certificate is self-signed by default.
			InsecureSkipVerify: true,
			NextProtos:         []string{"http/1.1"},
		},
		ForceAttemptHTTP2:   false,
		TLSHandshakeTimeout: HandshakeTimeout,
		DisableKeepAlives:   true,
		Proxy:               nil,
	}
	return &WSDialer{url: rawURL, secret: secret, log: log, client: &http.Client{Transport: tr}}, nil
}

// Dial connects and returns a session; ctx bounds only the handshake.
func (d *WSDialer) Dial(ctx context.Context) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	h := http.Header{}
	SetToken(h, d.secret)
	c, resp, err := websocket.Dial(ctx, d.url, &websocket.DialOptions{
		HTTPClient:      d.client,
		HTTPHeader:      h,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			// An origin answers a refused token with its decoy page, so a
			// plain HTTP status here most likely means a wrong secret,
			// path or clock.
			return nil, fmt.Errorf("websocket dial %s: HTTP %d instead of an upgrade (wrong FERRY_SECRET, path, or clock off by more than %v?)", d.url, resp.StatusCode, MaxSkew)
		}
		return nil, fmt.Errorf("websocket dial %s: %w", d.url, err)
	}
	return wsSession(c, true, resp.Header.Get(clientAddressHeader) == "want", d.log)
}

// clientAddressHeader, in the upgrade response, is the origin asking for
// clients' addresses. Only an authenticated edge ever sees it.
const clientAddressHeader = "X-Client-Addr"

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

// AcceptWS upgrades an authenticated request and runs the origin's side of a
// yamux session on it. The caller has checked the request's token. With
// clientAddr, the origin asks the edge for clients' addresses.
func AcceptWS(w http.ResponseWriter, r *http.Request, clientAddr bool, log *slog.Logger) (Session, error) {
	if clientAddr {
		w.Header().Set(clientAddressHeader, "want")
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		CompressionMode: websocket.CompressionDisabled,
		// Edges are not browsers; they send no Origin header to check.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return nil, fmt.Errorf("websocket accept: %w", err)
	}
	return wsSession(c, false, clientAddr, log)
}

func wsSession(c *websocket.Conn, client, clientAddr bool, log *slog.Logger) (Session, error) {
	// The context given to NetConn bounds the connection's whole life; the
	// session ends by Close instead, so it gets one that is never cancelled.
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	s, err := newYamux(&frameConn{Conn: nc}, client, clientAddr, log)
	if err != nil {
		c.CloseNow()
		return nil, err
	}
	return s, nil
}
