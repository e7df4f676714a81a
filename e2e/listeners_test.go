package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"ferry/cert"
	"ferry/edge"
	"ferry/internal/fake"
	"ferry/upstream"
)

// TestTLSListener checks that a TLS client, with TLS 1.2 or 1.3, reaches the
// chat server through a tls listener with its bytes intact.
func TestTLSListener(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		echo := fake.Start(t, fake.Echo)
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}})
		e := startEdgeWith(t, o.url, &edge.Server{}, lspec{name: "tls", route: "chat", tls: true})
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			c, err := tls.DialWithDialer(clientDialer, "tcp", e.addrs["tls"], &tls.Config{InsecureSkipVerify: true, MaxVersion: v})
			if err != nil {
				t.Fatalf("TLS %x: %v", v, err)
			}
			if got := c.ConnectionState().Version; got != v {
				t.Errorf("negotiated %x, want %x", got, v)
			}
			msg := bytes.Repeat([]byte("WA\x06\x03"), 1000)
			got, err := echoOnce(c, msg)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("TLS %x: echo differs, %v", v, err)
			}
			c.Close()
		}
	})
}

// TestMediaPassthrough checks that the media route carries the client's own
// TLS to the media server untouched: the client completes its handshake
// with the media server's certificate, not the edge's.
func TestMediaPassthrough(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		mediaCert, err := cert.SelfSigned()
		if err != nil {
			t.Fatal(err)
		}
		media := fake.Start(t, func(c net.Conn) {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{mediaCert}})
			io.Copy(tc, tc)
		})
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"media": {media.Addr()}})
		e := startEdge(t, o.url, "media")
		c, err := tls.DialWithDialer(clientDialer, "tcp", e.addrs["media"], &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if leaf := c.ConnectionState().PeerCertificates[0]; !leaf.Equal(mediaCert.Leaf) {
			t.Fatalf("client saw certificate %q, not the media server's %q", leaf.Subject.CommonName, mediaCert.Leaf.Subject.CommonName)
		}
		got, err := echoOnce(c, []byte("GET /media HTTP/1.1\r\n\r\n"))
		if err != nil || string(got) != "GET /media HTTP/1.1\r\n\r\n" {
			t.Fatalf("echo %q, %v", got, err)
		}
	})
}

// proxyTarget is a fake chat server that reports the PROXY header it got
// (nil for none) and then echoes what follows.
func proxyTarget(t *testing.T) (*fake.Server, chan *proxyproto.Header) {
	got := make(chan *proxyproto.Header, 10)
	srv := fake.Start(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		h, err := proxyproto.Read(br)
		if err != nil {
			h = nil
		}
		got <- h
		io.Copy(c, br)
	})
	return srv, got
}

// TestProxyProtocol checks the client's address end to end: taken from a
// PROXY header in front of proxy+tcp and proxy+tls listeners (or from the
// socket), sent through the tunnel only when the origin sends PROXY
// headers, and then given to the target.
func TestProxyProtocol(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		for _, version := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("origin-v%d", version), func(t *testing.T) {
				target, headers := proxyTarget(t)
				o := startOriginWith(t, scheme, "127.0.0.1:0", &upstream.Dialer{
					Targets: fixed(map[string][]string{"chat": {target.Addr()}}), ProxyProtocol: version,
				})
				e := startEdgeWith(t, o.url, &edge.Server{},
					lspec{name: "plain", route: "chat"},
					lspec{name: "proxy+tcp", route: "chat", proxy: true},
					lspec{name: "proxy+tls", route: "chat", proxy: true, tls: true})

				client := netip.MustParseAddrPort("203.0.113.9:4242")
				for _, tc := range []struct {
					listener   string
					clientHdr  byte // PROXY version the client's balancer sends
					wantSource string
				}{
					{"proxy+tcp", 2, client.String()},
					{"proxy+tcp", 1, client.String()},
					{"proxy+tls", 1, client.String()},
					{"plain", 0, clientIP},
				} {
					c := e.dial(t, tc.listener)
					var conn net.Conn = c
					if tc.clientHdr != 0 {
						h := proxyproto.HeaderProxyFromAddrs(tc.clientHdr, net.TCPAddrFromAddrPort(client), c.LocalAddr())
						if _, err := h.WriteTo(c); err != nil {
							t.Fatal(err)
						}
					}
					if tc.listener == "proxy+tls" {
						conn = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
					}
					msg := []byte("WA\x06\x03 hello")
					got, err := echoOnce(conn, msg)
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("%s: echo %q, %v: bytes before the client's reached the target", tc.listener, got, err)
					}
					h := <-headers
					switch {
					case version == 0 && h != nil:
						t.Errorf("%s: the target got a PROXY header from an origin with it off", tc.listener)
					case version != 0 && h == nil:
						t.Errorf("%s: no PROXY header at the target", tc.listener)
					case version != 0 && h.Version != version:
						t.Errorf("%s: PROXY v%d at the target, want v%d", tc.listener, h.Version, version)
					case version != 0:
						src := h.SourceAddr.(*net.TCPAddr)
						if s := src.String(); s != tc.wantSource && src.IP.String() != tc.wantSource {
							t.Errorf("%s: target saw client %s, want %s", tc.listener, s, tc.wantSource)
						}
					}
					conn.Close()
				}
			})
		}
	})
}

// TestBadClientsIsolated checks that a garbage PROXY header, plain bytes on
// a TLS port and a client that says nothing are each closed, while a good
// client on the same edge keeps working.
func TestBadClientsIsolated(t *testing.T) {
	echo := fake.Start(t, fake.Echo)
	o := startOrigin(t, "ws", "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}})
	e := startEdgeWith(t, o.url, &edge.Server{HandshakeTimeout: 300 * time.Millisecond},
		lspec{name: "plain", route: "chat"},
		lspec{name: "proxy", route: "chat", proxy: true},
		lspec{name: "tls", route: "chat", tls: true})
	good := e.dial(t, "plain")
	ping := func() {
		t.Helper()
		if got, err := echoOnce(good, []byte("ping")); err != nil || string(got) != "ping" {
			t.Fatalf("good client: %q, %v", got, err)
		}
	}
	ping()
	for _, tc := range []struct{ listener, send string }{
		{"proxy", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"proxy", "PROXY TCP4 1.2.3.4 nonsense\r\n"},
		{"tls", "WA\x06\x03 not TLS at all\r\n\r\n"},
		{"plain", ""}, // silent
		{"tls", ""},   // silent before the handshake
		{"proxy", ""}, // silent before the header
		{"proxy", "PROXY TCP4 192.0.2.1 192.0.2.2 1000 5222\r\n"}, // silent after it
	} {
		c := e.dial(t, tc.listener)
		io.WriteString(c, tc.send)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("%s %q: still open", tc.listener, tc.send)
			}
		}
		ping()
	}
	if s := e.srv.Stats(); s.Rejected != 7 {
		t.Errorf("%d clients rejected, want 7", s.Rejected)
	}
}

// TestCaps checks the per-IP cap, which counts an IPv6 /64 as one address,
// and the global cap.
func TestCaps(t *testing.T) {
	echo := fake.Start(t, fake.Echo)
	o := startOrigin(t, "ws", "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}})
	e := startEdgeWith(t, o.url, &edge.Server{MaxConns: 6, MaxConnsPerIP: 2},
		lspec{name: "plain", route: "chat"},
		lspec{name: "proxy", route: "chat", proxy: true})
	for i, s := range []struct {
		from string // the address in the PROXY header; empty for a plain client from 127.0.0.1
		want bool   // whether the client is served
	}{
		{"", true},
		{"", true},
		{"", false}, // a third from 127.0.0.1
		{"198.51.100.1:1000", true},
		{"[2001:db8:1:2::1]:1000", true},
		{"[2001:db8:1:2::ffff]:1000", true},
		{"[2001:db8:1:2:aaaa::1]:1000", false}, // a third from 2001:db8:1:2::/64
		{"198.51.100.2:1000", true},            // the sixth client
		{"198.51.100.3:1000", false},           // a seventh
	} {
		var c *net.TCPConn
		if s.from == "" {
			c = e.dial(t, "plain")
		} else {
			c = e.dial(t, "proxy")
			from := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s.from))
			proxyproto.HeaderProxyFromAddrs(2, from, c.LocalAddr()).WriteTo(c)
		}
		_, err := echoOnce(c, []byte("x"))
		if got := err == nil; got != s.want {
			t.Fatalf("client %d from %q: served %v, want %v", i, s.from, got, s.want)
		}
	}
	if st := e.srv.Stats(); st.Refused != 3 {
		t.Errorf("%d refused, want 3", st.Refused)
	}
}

// TestStandalone checks that standalone relays every route straight to its
// target.
func TestStandalone(t *testing.T) {
	targets := map[string][]string{}
	for _, route := range []string{"chat", "chat80", "media"} {
		srv := fake.Start(t, func(c net.Conn) {
			c.Read(make([]byte, 1))
			io.WriteString(c, route)
		})
		targets[route] = []string{srv.Addr()}
	}
	up := &upstream.Dialer{Targets: fixed(targets)}
	e := startEdgeWith(t, "", &edge.Server{Connect: edge.Direct(up.Dial)},
		lspec{name: "443", route: "chat", tls: true},
		lspec{name: "80", route: "chat80"},
		lspec{name: "5222", route: "chat"},
		lspec{name: "587", route: "media"},
		lspec{name: "8443", route: "chat", tls: true, proxy: true})
	for name, want := range map[string]string{"443": "chat", "80": "chat80", "5222": "chat", "587": "media", "8443": "chat"} {
		var c net.Conn = e.dial(t, name)
		if name == "8443" {
			proxyproto.HeaderProxyFromAddrs(1, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}, c.LocalAddr()).WriteTo(c)
		}
		if name == "443" || name == "8443" {
			c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		}
		c.Write([]byte("x"))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != want {
			t.Errorf("listener %s: got %q, %v; want %q", name, got, err, want)
		}
	}
}
