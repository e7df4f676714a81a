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

	"ferry/cert"
	"ferry/decoy"
	"ferry/internal/scan"
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
// certificate, and the same web site served by the decoy on a listener of
// its own (and its TLS twin) to compare with.
type scannerEdge struct {
	srv              *Server
	addr             map[string]string // listener kind → address
	refPlain, refTLS string            // the decoy serving the same site
	mediaCert        tls.Certificate
	mu               sync.Mutex
	connects         []string // route/serverName of each Connect
	cancel           context.CancelFunc
	done             chan struct{}
	refServers       []*http.Server
	echoLn, mediaLn  net.Listener
	handlersWG       sync.WaitGroup
}

func startScannerEdge(t *testing.T, mutate func(*Server)) *scannerEdge {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	e := &scannerEdge{addr: map[string]string{}, done: make(chan struct{})}
	site := decoy.New(decoy.Options{Dir: testSite(t)})
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
		Connect: Direct(func(ctx context.Context, route, serverName string, client netip.AddrPort) (net.Conn, error) {
			e.mu.Lock()
			e.connects = append(e.connects, route+"/"+serverName)
			e.mu.Unlock()
			var d net.Dialer
			if route == "media" {
				return d.DialContext(ctx, "tcp", e.mediaLn.Addr().String())
			}
			return d.DialContext(ctx, "tcp", e.echoLn.Addr().String())
		}),
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

	// The reference: the same site served as the decoy package serves it
	// on a listener of its own.
	for _, tlsRef := range []bool{false, true} {
		ln := listenLoopback(t)
		ref := newSiteServer(site)
		e.refServers = append(e.refServers, ref)
		if tlsRef {
			e.refTLS = ln.Addr().String()
			ln = decoy.TLSListener(ln, tlsConf)
		} else {
			e.refPlain = ln.Addr().String()
			ln = decoy.Listener(ln)
		}
		go ref.Serve(ln)
	}

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		defer close(e.done)
		srv.Grace = time.Second
		if err := srv.Run(ctx); err != nil {
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

// TestScannerView sends what scanners send to every kind of listener and
// checks that each answers exactly as the decoy serving the same site on a
// listener of its own answers the same bytes (decoy/nginx_test.go compares
// that with nginx).
func TestScannerView(t *testing.T) {
	e := startScannerEdge(t, nil)
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
		for _, p := range scan.Probes(t, "scan.example") {
			t.Run(k.kind+"/"+p.Name, func(t *testing.T) {
				target := scan.Target{Addr: e.addr[k.kind], Proxy: k.proxy, TLS: k.useTLS, SNI: "scan.example"}
				got := scan.Answers(scan.Exchange(t, target, p.Send, false), p.Method)
				target = scan.Target{Addr: k.reference, TLS: k.useTLS, SNI: "scan.example"}
				want := scan.Answers(scan.Exchange(t, target, p.Send, p.CloseWrite), p.Method)
				if len(want) == 0 {
					t.Fatalf("the reference answered nothing")
				}
				if !slices.Equal(got, want) {
					t.Fatalf("edge answered\n%+v\nthe decoy answered\n%+v", got, want)
				}
				if p.Status != 0 && got[0].Status != p.Status {
					t.Fatalf("status %d, want %d", got[0].Status, p.Status)
				}
			})
		}
	}
	// What is not a ClientHello, sent to a TLS port, gets the decoy's TLS
	// listener's answer, byte for byte: nginx's 400 pages to plain HTTP and
	// to other bytes that are not TLS, one alert to an SSLv2 hello or an
	// oversized record (as scanners of TLS send). A media port, which
	// serves the site in the clear too, answers plain HTTP as a plain
	// server.
	raw := []struct {
		name string
		b    []byte
	}{
		{"plain HTTP", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")},
		{"SSLv2 hello", []byte("\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10\x07\x00\xc0\x05\x00\x80\x03\x00\x80\x01\x00\x80\x06\x00\x40\x04\x00\x80\x02\x00\x80" + strings.Repeat("\x11", 16))},
		{"oversized record", append([]byte("\x16\x03\x01\xff\xff"), make([]byte, 64)...)},
		{"random bytes", []byte{0x8f, 0x02, 0xff, 0x00, 0x13, 0x37, 0xc4, 0x81}},
	}
	for _, kind := range []string{"tls", "proxy+tls", "media"} {
		for _, r := range raw {
			got := scan.Exchange(t, scan.Target{Addr: e.addr[kind], Proxy: kind == "proxy+tls"}, r.b, true)
			ref := e.refTLS
			if kind == "media" && r.name == "plain HTTP" {
				ref = e.refPlain
			}
			want := scan.Exchange(t, scan.Target{Addr: ref}, r.b, true)
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %s: got %q, the decoy %q", kind, r.name, got, want)
			}
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

// TestSiteDrain checks that a web visitor idle on a kept-alive connection
// does not hold up the drain: the edge closes it and Run returns.
func TestSiteDrain(t *testing.T) {
	e := startScannerEdge(t, nil)
	c, err := net.Dial("tcp", e.addr["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	e.cancel()
	<-e.done
	if n, err := br.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the visitor's connection is open after the drain (%d bytes)", n)
	}
	if a := e.srv.Stats().Active; a != 0 {
		t.Errorf("%d clients counted after the drain", a)
	}
}
