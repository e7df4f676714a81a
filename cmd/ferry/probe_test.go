package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"ferry/internal/fake"
	"ferry/internal/probe"
	"ferry/tunnel"
)

// TestProber is a censor's prober in a table: one exchange per row, over
// TCP and QUIC, against stock processes of the real binary (an origin with
// ws, wss and quic listeners, a second origin with the same secret, and an
// edge with a proxy+tcp listener), each row saying what the answer must
// look like and, for the rows that could give ferry away, which ordinary
// answer it must equal. Every answer of every row is also checked for what
// would name ferry or Go's net/http. Every log line the processes write, at
// debug level, goes through the package's log check: no secret, URL
// password or client address (TestMain fails the run otherwise).
//
// It runs in a network namespace of its own, whose loopback also holds
// 198.51.100.1, an address outside FERRY_EDGE_PROXY_FROM's default: a
// PROXY header from there must not be believed.
func TestProber(t *testing.T) {
	inNamespace(t, "TestProber", proberInNamespace, func(name string) {
		ipCmd(t, "-n", name, "addr", "add", untrusted+"/32", "dev", "lo")
	})
}

// seen is what a prober learns from one exchange, as text: the status line,
// the header names, the Server and Content-Type headers, and a hash of the body; or the
// error that ended the exchange.
type seen string

func seenHTTP(resp *http.Response, err error) seen {
	if err != nil {
		return seen("error: " + err.Error())
	}
	defer resp.Body.Close()
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	var names []string
	for k := range resp.Header {
		// Date differs by the second; Connection is HTTP/1.1's own.
		if k != "Date" && k != "Connection" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return seen(fmt.Sprintf("%s %d\nheaders %s\nserver %q\ncontent-type %q\nbody %d bytes %x\n%s",
		resp.Proto, resp.StatusCode, strings.Join(names, ","), resp.Header.Get("Server"), resp.Header.Get("Content-Type"),
		len(body), sha256.Sum256(body), body))
}

// status is the status of a seen HTTP answer, 0 for an error.
func (s seen) status() int {
	var proto string
	var code int
	fmt.Sscanf(string(s), "%s %d", &proto, &code)
	return code
}

// withoutProto is s without its protocol version, for comparing the same
// page over HTTP/1.1, HTTP/2 and HTTP/3.
func (s seen) withoutProto() string {
	_, rest, _ := strings.Cut(string(s), " ")
	return rest
}

// giveaways are what no answer to a stranger may hold: ferry's name, and
// what Go's net/http says where a web server such as nginx says otherwise.
var boundary = regexp.MustCompile(`--[0-9]{20}`)

var giveaways = []string{"ferry", "Go-http", "Client sent an HTTP request to an HTTPS server", "text/plain; charset=utf-8", "Golang"}

func proberInNamespace(t *testing.T) {
	bin := os.Getenv(netnsBin)
	logs.Forbidden = append(logs.Forbidden, untrusted, "203.0.113.7")
	echo := fake.Start(t, fake.Echo)
	wsA, wssA, quicA, wsB, edgeAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	_, edgePort, _ := net.SplitHostPort(edgeAddr)
	common := []string{"FERRY_SECRET=" + secret, "FERRY_ADMIN=", "FERRY_LOG_LEVEL=debug"}
	start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+wsA+"/t,wss://"+wssA+"/t,quic://"+quicA,
		"FERRY_ORIGIN_TARGETS=chat="+echo.Addr()), "ferry origin starting", "origin")
	start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+wsB+"/t", "FERRY_ORIGIN_TARGETS=chat="+echo.Addr()),
		"ferry origin starting", "origin")
	edg := start(t, bin, append(common, "FERRY_EDGE_ORIGINS=ws://"+wsA+"/t", "FERRY_EDGE_LISTEN=proxy+tcp://:"+edgePort+"/chat"),
		"ferry edge starting", "edge")
	edg.waitFor(t, "tunnel up")
	edg.discardLines()
	ref := probe.H3Server(t, http.NotFoundHandler(), nil)

	// Strangers come from clientIP, over TCP and UDP.
	h1 := &http.Transport{DialContext: clientDialer.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	h2 := &http.Transport{DialContext: clientDialer.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Protocols: new(http.Protocols)}
	h2.Protocols.SetHTTP2(true)
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2.CloseIdleConnections)
	udp := strangerUDP(t)
	get := func(tr http.RoundTripper, url string, header ...string) seen {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			if header[i] == "Host" {
				req.Host = header[i+1]
				continue
			}
			req.Header.Set(header[i], header[i+1])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return seenHTTP(tr.RoundTrip(req.WithContext(ctx)))
	}
	h3get := func(path string) seen { return get(udp.h3, "https://"+quicA+path) }
	upgrade := func(cookie ...string) []string {
		h := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
			"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "User-Agent", tunnel.BrowserUserAgent}
		if len(cookie) > 0 {
			h = append(h, "Cookie", tunnel.TokenCookie+"="+cookie[0])
		}
		return h
	}

	page := get(h1, "http://"+wsA+"/")
	missing := get(h1, "http://"+wsA+"/no-such-page")
	if page.status() != http.StatusOK || missing.status() != http.StatusNotFound {
		t.Fatalf("the decoy: GET / %d, a missing page %d; want 200 and 404\n%s\n%s", page.status(), missing.status(), page, missing)
	}
	rows := []struct {
		name  string
		probe func() seen
		// like is the answer the row's must equal, nil for none; status is
		// the one it must have, 0 for any.
		like   func() seen
		status int
	}{
		// The tunnel path answers as any missing page, however asked.
		{"ws: the tunnel path", func() seen { return get(h1, "http://"+wsA+"/t") }, func() seen { return missing }, 404},
		{"ws: an upgrade without a token", func() seen { return get(h1, "http://"+wsA+"/t", upgrade()...) }, func() seen { return missing }, 404},
		{"ws: an upgrade with a bad token", func() seen { return get(h1, "http://"+wsA+"/t", upgrade("bad")...) }, func() seen { return missing }, 404},
		{"ws: a token in Authorization", func() seen {
			return get(h1, "http://"+wsA+"/t", append(upgrade(), "Authorization", "Bearer "+tunnel.Token(secret, time.Now(), "127.0.0.1", "/t"))...)
		}, func() seen { return missing }, 404},
		// A token seen at one origin (a.example) and sent to another,
		// where a front routes by the Host header.
		{"ws: a token replayed at another origin", func() seen {
			return get(h1, "http://"+wsB+"/t", append(upgrade(tunnel.Token(secret, time.Now(), "a.example", "/t")), "Host", "b.example")...)
		}, func() seen { return get(h1, "http://"+wsB+"/no-such-page", "Host", "b.example") }, 404},
		// The edge's own way in works, so that the rows above refuse for
		// the reason they name.
		{"ws: a good token", func() seen {
			return get(h1, "http://"+wsA+"/t", upgrade(tunnel.Token(secret, time.Now(), "127.0.0.1", "/t"))...)
		}, nil, http.StatusSwitchingProtocols},

		// The same site over HTTP/1.1, HTTP/2 and HTTP/3.
		{"wss: HTTP/1.1", func() seen { return get(h1, "https://"+wssA+"/") }, func() seen { return page }, 200},
		{"wss: HTTP/2", func() seen { return get(h2, "https://"+wssA+"/") }, func() seen { return page }, 200},
		{"wss: HTTP/2, the tunnel path", func() seen { return get(h2, "https://"+wssA+"/t") }, func() seen { return missing }, 404},
		{"wss: plain HTTP to the TLS port", func() seen { return rawHTTP(t, wssA, "GET / HTTP/1.1\r\nHost: a\r\n\r\n") }, nil, http.StatusBadRequest},
		{"wss: ALPN foo", func() seen { return tlsALPN(t, wssA, "foo") }, func() seen { return "error: remote error: tls: no application protocol" }, 0},
		{"quic: h3", func() seen { return h3get("/") }, func() seen { return page }, 200},
		{"quic: h3, a missing page", func() seen { return h3get("/no-such-page") }, func() seen { return missing }, 404},

		// QUIC as an HTTP/3 server answers it: quic-go's own, in this test.
		{"quic: ALPN ferry/1", func() seen { return udp.handshake(quicA, "ferry/1") }, func() seen { return udp.handshake(ref, "ferry/1") }, 0},
		{"quic: ALPN foo", func() seen { return udp.handshake(quicA, "foo") }, func() seen { return udp.handshake(ref, "foo") }, 0},
		{"quic: h3, a DATA frame first", func() seen { return udp.dataFirst(quicA) }, func() seen { return udp.dataFirst(ref) }, 0},

		// A PROXY header is believed from a load balancer's place only:
		// from an outside address it is a stranger's bytes, answered as a
		// web server answers a request line it cannot parse.
		{"edge: a PROXY header from " + untrusted, func() seen {
			return rawHTTPFrom(t, untrusted, net.JoinHostPort(untrusted, edgePort), "PROXY TCP4 203.0.113.7 127.0.0.1 5555 8222\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
		}, nil, http.StatusBadRequest},
		{"edge: a PROXY header from 127.0.0.1", func() seen {
			return rawHTTPFrom(t, "127.0.0.1", net.JoinHostPort("127.0.0.1", edgePort), "PROXY TCP4 203.0.113.7 127.0.0.1 5555 8222\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
		}, nil, http.StatusOK},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			got := r.probe()
			for _, g := range giveaways {
				if strings.Contains(strings.ToLower(string(got)), strings.ToLower(g)) {
					t.Errorf("the answer holds %q:\n%s", g, got)
				}
			}
			if r.status != 0 && got.status() != r.status {
				t.Errorf("status %d, want %d:\n%s", got.status(), r.status, got)
			}
			if r.like == nil {
				return
			}
			want := r.like()
			if got.status() != 0 {
				if got.withoutProto() != want.withoutProto() {
					t.Errorf("answered\n%s\nwant as\n%s", got, want)
				}
			} else if got != want {
				t.Errorf("answered %s\nwant as %s", got, want)
			}
		})
	}

	// The request corpus of the decoy's comparison with nginx: the same
	// answers over ws and wss, the site's over HTTP and HTTPS, with nothing
	// that names ferry or Go.
	plain := func(ctx context.Context, addr string) (net.Conn, error) {
		return clientDialer.DialContext(ctx, "tcp", addr)
	}
	secure := func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{NetDialer: clientDialer, Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
		return d.DialContext(ctx, "tcp", addr)
	}
	for _, req := range probe.Corpus("127.0.0.1") {
		t.Run("corpus: "+req.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			overWS, err := probe.Send(ctx, plain, wsA, req)
			if err != nil {
				t.Fatal(err)
			}
			overWSS, err := probe.Send(ctx, secure, wssA, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []probe.Answer{overWS, overWSS} {
				text := strings.ToLower(fmt.Sprintf("%+v", a))
				for _, g := range giveaways {
					if strings.Contains(text, strings.ToLower(g)) {
						t.Errorf("the answer holds %q: %+v", g, a)
					}
				}
			}
			if w, s := answerText(overWS), answerText(overWSS); w != s {
				t.Errorf("over ws\n%s\nover wss\n%s", w, s)
			}
		})
	}
}

// answerText is what a probe's answer shows, Date aside: status lines,
// header names in order, the Server header and the bodies, with the
// multipart boundary a counter, as nginx's is, taken out.
func answerText(a probe.Answer) string {
	var b strings.Builder
	for _, r := range a.Responses {
		body := boundary.ReplaceAll(r.Body, []byte("--BOUNDARY"))
		fmt.Fprintf(&b, "%s\n%v server %q close %v\n%s\n", r.StatusLine, r.Names, r.Header.Get("Server"), r.Close, body)
	}
	fmt.Fprintf(&b, "rest %q", a.Rest)
	return b.String()
}

// rawHTTP sends req to addr over TCP from clientIP and reads one response.
func rawHTTP(t *testing.T, addr, req string) seen {
	return rawHTTPFrom(t, clientIP, addr, req)
}

func rawHTTPFrom(t *testing.T, from, addr, req string) seen {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	return seenHTTP(http.ReadResponse(bufio.NewReader(c), nil))
}

// tlsALPN is a TLS handshake with addr offering only alpn.
func tlsALPN(t *testing.T, addr, alpn string) seen {
	t.Helper()
	c, err := clientDialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}})
	if err := tc.Handshake(); err != nil {
		return seen("error: " + err.Error())
	}
	return seen("handshake, ALPN " + tc.ConnectionState().NegotiatedProtocol)
}

// udpStranger is a QUIC client on a UDP socket of clientIP.
type udpStranger struct {
	t  *testing.T
	tr *quic.Transport
	h3 *http3.Transport
}

func strangerUDP(t *testing.T) *udpStranger {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(clientIP)})
	if err != nil {
		t.Fatal(err)
	}
	u := &udpStranger{t: t, tr: &quic.Transport{Conn: pc}}
	u.h3 = &http3.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		Dial: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			ua, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			return u.tr.DialEarly(ctx, ua, tc, qc)
		},
	}
	t.Cleanup(func() {
		u.h3.Close()
		u.tr.Close()
		pc.Close()
	})
	return u
}

// dial is a QUIC handshake with addr offering alpn.
func (u *udpStranger) dial(ctx context.Context, addr, alpn string) (*quic.Conn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		u.t.Fatal(err)
	}
	return u.tr.Dial(ctx, ua, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}}, nil)
}

func (u *udpStranger) handshake(addr, alpn string) seen {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := u.dial(ctx, addr, alpn)
	if err != nil {
		return seen("error: " + err.Error())
	}
	conn.CloseWithError(0, "")
	return seen("handshake, ALPN " + conn.ConnectionState().TLS.NegotiatedProtocol)
}

// dataFirst opens an HTTP/3 connection whose first request stream begins
// with a DATA frame, and returns how the server ends the connection.
func (u *udpStranger) dataFirst(addr string) seen {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := u.dial(ctx, addr, http3.NextProtoH3)
	if err != nil {
		return seen("error: " + err.Error())
	}
	defer conn.CloseWithError(0, "")
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return seen("error: " + err.Error())
	}
	st.Write([]byte{0x00, 0x02, 'h', 'i'})
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
		return seen("still open")
	}
	err = context.Cause(conn.Context())
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		return seen(fmt.Sprintf("closed by the server: code %#x %q", uint64(ae.ErrorCode), ae.ErrorMessage))
	}
	return seen("closed: " + err.Error())
}
