package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryproxy/ferry/cert"
	"github.com/ferryproxy/ferry/decoy"
)

// testSite is a directory with an index page, as an operator's
// FERRY_EDGE_DECOY would be.
func testSite(t testing.TB) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<!doctype html><title>Hello</title><p>Hello.</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scannerEdge is an edge with one listener of every kind, whose chat route
// echoes and whose media route reaches a TLS server with its own
// certificate, and the same web site served by a plain net/http server (and
// its TLS twin) to compare with.
type scannerEdge struct {
	srv                 *Server
	addr                map[string]string // listener kind → address
	refPlain, refTLS    string            // net/http serving the same site
	mediaCert           tls.Certificate
	mu                  sync.Mutex
	connects            []string // route/serverName of each Connect
	cancel              context.CancelFunc
	done                chan struct{}
	refServers          []*http.Server
	echoLn, mediaLn     net.Listener
	handlersWG          sync.WaitGroup
	HandshakeTimeoutSet time.Duration
}

func startScannerEdge(t *testing.T, mutate func(*Server)) *scannerEdge {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	e := &scannerEdge{addr: map[string]string{}, done: make(chan struct{})}
	site := decoy.New(nil, testSite(t))
	tlsConf := &tls.Config{Certificates: []tls.Certificate{crt}}

	// The chat target echoes; the media target is a TLS server whose
	// certificate the client must see.
	e.echoLn = listenLoopback(t)
	e.mediaLn = listenLoopback(t)
	e.mediaCert = mustCert(t)
	e.serveTargets()

	srv := &Server{
		TLS:              tlsConf,
		Site:             site,
		MediaNames:       []string{"*.whatsapp.net"},
		HandshakeTimeout: 2 * time.Second,
		Log:              slog.New(slog.DiscardHandler),
		Connect: func(ctx context.Context, route, serverName string, client netip.AddrPort) (net.Conn, error) {
			e.mu.Lock()
			e.connects = append(e.connects, route+"/"+serverName)
			e.mu.Unlock()
			var d net.Dialer
			if route == "media" {
				return d.DialContext(ctx, "tcp", e.mediaLn.Addr().String())
			}
			return d.DialContext(ctx, "tcp", e.echoLn.Addr().String())
		},
	}
	for _, l := range []struct {
		kind string
		l    Listener
	}{
		{"tcp", Listener{Route: "chat"}},
		{"tls", Listener{Route: "chat", TLS: true}},
		{"proxy+tcp", Listener{Route: "chat", ProxyProtocol: true}},
		{"proxy+tls", Listener{Route: "chat", TLS: true, ProxyProtocol: true}},
		{"media", Listener{Route: "media", Media: true}},
		{"off", Listener{Route: "chat", DecoyOff: true}},
	} {
		l.l.Listener = listenLoopback(t)
		e.addr[l.kind] = l.l.Addr().String()
		srv.Listeners = append(srv.Listeners, l.l)
	}
	if mutate != nil {
		mutate(srv)
	}
	e.srv = srv

	// The reference: Go's net/http with the edge's site settings.
	for _, tlsRef := range []bool{false, true} {
		ln := listenLoopback(t)
		ref := newSiteServer(site)
		e.refServers = append(e.refServers, ref)
		if tlsRef {
			e.refTLS = ln.Addr().String()
			ln = tls.NewListener(ln, tlsConf)
		} else {
			e.refPlain = ln.Addr().String()
		}
		go ref.Serve(ln)
	}

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		defer close(e.done)
		if err := srv.Run(ctx, time.Second); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(e.stop)
	return e
}

func (e *scannerEdge) stop() {
	e.cancel()
	<-e.done
	for _, r := range e.refServers {
		r.Close()
	}
	e.echoLn.Close()
	e.mediaLn.Close()
	e.handlersWG.Wait()
}

func (e *scannerEdge) serveTargets() {
	serve := func(ln net.Listener, h func(net.Conn)) {
		e.handlersWG.Add(1)
		go func() {
			defer e.handlersWG.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				e.handlersWG.Add(1)
				go func() {
					defer e.handlersWG.Done()
					defer c.Close()
					h(c)
				}()
			}
		}()
	}
	serve(e.echoLn, func(c net.Conn) { io.Copy(c, c) })
	serve(e.mediaLn, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{e.mediaCert}})
		if tc.Handshake() == nil {
			io.Copy(tc, tc)
		}
	})
}

func (e *scannerEdge) connected() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.connects)
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func mustCert(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exchange sends b (after a PROXY header for a proxy+ listener, inside TLS
// with server name sni for a tls one), half-closes if asked, and returns
// all that comes back until the server closes, or the bound of 10 s.
func exchange(t *testing.T, addr string, proxy, useTLS bool, sni string, b []byte, closeWrite bool) []byte {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if proxy {
		io.WriteString(raw, "PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n")
	}
	var c net.Conn = raw
	if useTLS {
		tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: sni, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		c = tc
	}
	c.Write(b)
	if closeWrite {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	out, _ := io.ReadAll(c)
	return out
}

// answer is what a web client sees of a response: its status line, header
// names (without Date, which differs by the second) and body.
type answer struct {
	status  string
	headers string
	body    string
}

func parseAnswers(t *testing.T, raw []byte, method string) []answer {
	t.Helper()
	var out []answer
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		if _, err := br.Peek(1); err != nil {
			return out
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			// Not HTTP: keep the bytes as they are.
			rest, _ := io.ReadAll(br)
			return append(out, answer{status: "raw", body: string(rest)})
		}
		body, _ := io.ReadAll(resp.Body)
		var names []string
		for k := range resp.Header {
			if k != "Date" {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		out = append(out, answer{status: resp.Status, headers: strings.Join(names, ","), body: string(body)})
	}
}

// TestScannerView sends what scanners send to every kind of listener and
// checks that each answers exactly as Go's net/http serving the same site
// answers the same bytes.
func TestScannerView(t *testing.T) {
	e := startScannerEdge(t, nil)
	randomBytes := []byte{0x8f, 0x02, 0xff, 0x00, 0x13, 0x37, 0xc4, 0x81, 0x5a, 0x00, 0x01}
	probes := []struct {
		name       string
		send       string
		method     string
		closeWrite bool // for the reference, which waits for a line's end
		wantStatus string
	}{
		{"GET", "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 zgrab/0.x\r\nAccept: */*\r\nConnection: close\r\n\r\n", "GET", false, "200 OK"},
		{"HEAD", "HEAD / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n", "HEAD", false, "200 OK"},
		{"missing page", "GET /admin/login.php HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n", "GET", false, "404 Not Found"},
		{"keep-alive", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET", false, ""},
		{"malformed request line", "GET\r\n\r\n", "GET", false, "400 Bad Request"},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", "GET", false, "200 OK"},
		{"random bytes", string(randomBytes), "GET", true, "400 Bad Request"},
		{"TLS ClientHello", string(clientHello(t, "scan.example")), "GET", true, "400 Bad Request"},
	}
	kinds := []struct {
		kind      string
		proxy     bool
		useTLS    bool
		reference string
	}{
		{"tcp", false, false, e.refPlain},
		{"proxy+tcp", true, false, e.refPlain},
		{"tls", false, true, e.refTLS},
		{"proxy+tls", true, true, e.refTLS},
		{"media", false, true, e.refTLS},
	}
	for _, k := range kinds {
		for _, p := range probes {
			t.Run(k.kind+"/"+p.name, func(t *testing.T) {
				sni := "scan.example"
				got := parseAnswers(t, exchange(t, e.addr[k.kind], k.proxy, k.useTLS, sni, []byte(p.send), false), p.method)
				want := parseAnswers(t, exchange(t, k.reference, false, k.useTLS, sni, []byte(p.send), p.closeWrite), p.method)
				if len(want) == 0 {
					t.Fatalf("the reference answered nothing")
				}
				if !slices.Equal(got, want) {
					t.Fatalf("edge answered\n%+v\nnet/http answered\n%+v", got, want)
				}
				if p.wantStatus != "" && got[0].status != p.wantStatus {
					t.Fatalf("status %q, want %q", got[0].status, p.wantStatus)
				}
			})
		}
	}
	// Plain HTTP to a TLS port gets net/http's TLS server's own answer.
	for _, kind := range []string{"tls", "proxy+tls"} {
		req := []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
		got := exchange(t, e.addr[kind], kind == "proxy+tls", false, "", req, false)
		want := exchange(t, e.refTLS, false, false, "", req, false)
		if !bytes.Equal(got, want) || !bytes.Contains(got, []byte("400 Bad Request")) {
			t.Errorf("%s: plain HTTP got %q, net/http's TLS server %q", kind, got, want)
		}
	}
	if n := len(e.connected()); n != 0 {
		t.Errorf("%d scanner connections reached a route: %v", n, e.connected())
	}
	if v := e.srv.Stats().Visits; v == 0 {
		t.Errorf("no site visit counted")
	}
}

// TestScannerSilence checks that a client that sends nothing is closed at
// the handshake deadline, with nothing written, as a web server closes an
// idle connection.
func TestScannerSilence(t *testing.T) {
	e := startScannerEdge(t, func(s *Server) { s.HandshakeTimeout = 200 * time.Millisecond })
	for _, kind := range []string{"tcp", "tls", "media", "proxy+tcp"} {
		c, err := net.Dial("tcp", e.addr[kind])
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || len(got) != 0 {
			t.Errorf("%s: silence got %q, %v; want a close with nothing", kind, got, err)
		}
	}
}

// clientHello returns the bytes of a TLS ClientHello for sni, as a client
// of crypto/tls sends them.
func clientHello(t testing.TB, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16<<10)
	hdr := buf[:5]
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	if _, err := io.ReadFull(b, buf[5:5+n]); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf[:5+n])
}
