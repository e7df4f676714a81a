package check_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ferry/cert"
	"ferry/check"
	"ferry/internal/fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// deadPort returns a loopback port with nothing listening.
func deadPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, ln.Addr().String())
	ln.Close()
	return p
}

// TestRun checks each verdict against fake servers: WhatsApp answering in
// plain and behind TLS, a media server, a dead port, a silent one, and one
// that answers but not as WhatsApp.
func TestRun(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{crt}}
	overTLS := func(h func(net.Conn)) func(net.Conn) {
		return func(c net.Conn) {
			tc := tls.Server(c, conf)
			if tc.Handshake() == nil {
				h(tc)
			}
		}
	}
	chat := fake.Start(t, fake.WhatsApp)
	chatTLS := fake.Start(t, overTLS(fake.WhatsApp))
	media := fake.Start(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{mediaCert(t)}})
		if tc.Handshake() == nil {
			fake.Discard(tc)
		}
	})
	silent := fake.Start(t, fake.Discard)
	echo := fake.Start(t, fake.Echo)
	for _, tc := range []struct {
		name string
		p    check.Port
		ok   bool
		says string
	}{
		{"chat", check.Port{Port: port(t, chat.Addr())}, true, "WhatsApp answers"},
		{"chat over TLS", check.Port{Port: port(t, chatTLS.Addr()), TLS: true}, true, "WhatsApp answers"},
		{"media", check.Port{Port: port(t, media.Addr()), Media: true}, true, "media server answers"},
		{"media answered by the proxy", check.Port{Port: port(t, chatTLS.Addr()), Media: true}, false, "certificate for " + crt.Leaf.DNSNames[0] + ", not mmg.whatsapp.net"},
		{"dead", check.Port{Port: deadPort(t)}, false, "refused: a firewall, or nothing listening"},
		{"silent", check.Port{Port: port(t, silent.Addr())}, false, "TCP connects but nothing answers behind it"},
		{"silent TLS", check.Port{Port: port(t, chatTLS.Addr())}, false, "closed the connection unanswered"},
		{"plain on TLS", check.Port{Port: port(t, chat.Addr()), TLS: true}, false, "TLS fails"},
		{"not WhatsApp", check.Port{Port: port(t, echo.Addr())}, false, "not like WhatsApp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := check.Run(context.Background(), "127.0.0.1", []check.Port{tc.p}, 500*time.Millisecond)
			r := rs[0]
			if r.OK != tc.ok || !strings.Contains(r.Verdict, tc.says) {
				t.Errorf("ok %v, %q; want %v, %q", r.OK, r.Verdict, tc.ok, tc.says)
			}
			if r.OK && (r.Connect <= 0 || (tc.p.TLS || tc.p.Media) && r.Handshake <= 0 || !tc.p.Media && r.Answer <= 0) {
				t.Errorf("timings missing: %+v", r)
			}
		})
	}

	rs := check.Run(context.Background(), "127.0.0.1", []check.Port{{Port: deadPort(t)}, {Port: port(t, chat.Addr())}}, time.Second)
	var out bytes.Buffer
	check.Write(&out, "127.0.0.1", rs)
	if !check.Works(rs) || !strings.Contains(out.String(), "Chat works through 127.0.0.1") || !strings.Contains(out.String(), "refused") {
		t.Errorf("table:\n%s", out.String())
	}
	if check.Works(rs[:1]) {
		t.Error("a dead port alone works")
	}
}

func TestParsePorts(t *testing.T) {
	ps, err := check.ParsePorts("443/tls, 80,5222", false)
	if err != nil || len(ps) != 3 || !ps[0].TLS || ps[1].Port != 80 || ps[2].TLS {
		t.Fatalf("%+v, %v", ps, err)
	}
	for _, bad := range []string{"x", "0", "70000", "443/ssl"} {
		if _, err := check.ParsePorts(bad, false); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := check.ParsePorts("587/tls", true); err == nil {
		t.Error("media port with /tls accepted")
	}
}

// FuzzAwaitServerHello feeds arbitrary answers: only a frame whose payload
// starts with the serverHello tag passes.
func FuzzAwaitServerHello(f *testing.F) {
	f.Add(check.ServerHello())
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n"))
	f.Add([]byte{0, 0, 0, 0x1a})
	f.Add([]byte("HTTP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := check.AwaitServerHello(bytes.NewReader(b))
		want := len(b) >= 4 && b[3] == 0x1a && (b[0]|b[1]|b[2]) != 0
		if (err == nil) != want {
			t.Fatalf("%x: %v", b, err)
		}
		if err != nil && len(b) >= 4 && !errors.Is(err, check.ErrNotWhatsApp) {
			t.Fatalf("%x: %v", b, err)
		}
		if isWeb := len(b) >= 4 && string(b[:4]) == "HTTP"; errors.Is(err, check.ErrWebAnswer) != isWeb {
			t.Fatalf("%x: %v", b, err)
		}
	})
}

// mediaCert is a self-signed certificate for WhatsApp's media names, as the
// stand-in for its media servers shows.
func mediaCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "*.whatsapp.net"},
		DNSNames:     []string{"*.whatsapp.net", "whatsapp.net"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// site is a web site that answers the scanner's request, and only that,
// with 200: anything else gets 400, so "200" shows the request was right.
func site(c net.Conn) {
	serveHTTP(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" || r.Host != "127.0.0.1" || r.UserAgent() != check.ScannerAgent || !r.Close {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		w.Write([]byte("<!doctype html><title>Welcome</title>"))
	}))
}

// serveHTTP serves HTTP on c with Go's net/http until the connection closes.
func serveHTTP(c net.Conn, h http.Handler) {
	done := make(chan struct{})
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			close(done)
		}
	}}
	srv.Serve(&oneConn{c: c, addr: c.LocalAddr(), done: done})
}

// oneConn is a listener that accepts c, then nothing until done is closed.
type oneConn struct {
	c    net.Conn
	addr net.Addr
	done chan struct{}
}

func (l *oneConn) Accept() (net.Conn, error) {
	if c := l.c; c != nil {
		l.c = nil
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return l.addr }

// peeked is a connection whose first bytes have been looked at.
type peeked struct {
	net.Conn
	r *bufio.Reader
}

func (p peeked) Read(b []byte) (int, error) { return p.r.Read(b) }

// route sends a connection that opens like WhatsApp's chat to wa and any
// other to web, as ferry's edge routes on the first bytes.
func route(wa, web func(net.Conn)) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		b, err := br.Peek(2)
		if err != nil {
			return
		}
		if string(b) == "WA" {
			wa(peeked{c, br})
		} else {
			web(peeked{c, br})
		}
	}
}

// mediaPort passes TLS whose server name is WhatsApp's media name to a media
// server when passes says so, and ends any other TLS itself, with a
// certificate of its own, in front of web.
func mediaPort(t *testing.T, passes func() bool, web func(net.Conn)) func(net.Conn) {
	waCert := mediaCert(t)
	own, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return func(c net.Conn) {
		var passed bool
		tc := tls.Server(c, &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if passed = h.ServerName == check.MediaServerName && passes(); passed {
				return &waCert, nil
			}
			return &own, nil
		}})
		if tc.Handshake() != nil {
			return
		}
		if passed {
			fake.Discard(tc)
		} else {
			web(tc)
		}
	}
}

// TestWeb checks what each kind of port shows a stranger: an edge that
// routes on the first bytes shows its web site on chat ports, plain and TLS,
// and on media ports for a server name that is not WhatsApp's; a proxy that
// is silent to HTTP, closes, or answers in another protocol gives itself
// away. None of it changes whether chat works.
func TestWeb(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	overTLS := func(h func(net.Conn)) func(net.Conn) {
		return func(c net.Conn) {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{crt}})
			if tc.Handshake() == nil {
				h(tc)
			}
		}
	}
	silentToHTTP := route(fake.WhatsApp, fake.Discard)
	edge := fake.Start(t, route(fake.WhatsApp, site))
	edgeTLS := fake.Start(t, overTLS(route(fake.WhatsApp, site)))
	edgeMedia := fake.Start(t, mediaPort(t, func() bool { return true }, site))
	webOnly := fake.Start(t, site)
	proxy := fake.Start(t, silentToHTTP)
	proxyTLS := fake.Start(t, overTLS(silentToHTTP))
	closes := fake.Start(t, fake.WhatsApp)
	echo := fake.Start(t, fake.Echo)
	for _, tc := range []struct {
		name      string
		p         check.Port
		ok        bool
		says      string
		web, note string
	}{
		{"edge", check.Port{Port: port(t, edge.Addr())}, true, "WhatsApp answers", "200", ""},
		{"edge over TLS", check.Port{Port: port(t, edgeTLS.Addr()), TLS: true}, true, "WhatsApp answers", "200", ""},
		{"edge media", check.Port{Port: port(t, edgeMedia.Addr()), Media: true}, true, "media server answers", "200", ""},
		{"web server only", check.Port{Port: port(t, webOnly.Addr())}, false, "a web server answers the opening, not WhatsApp", "200", ""},
		{"proxy silent to HTTP", check.Port{Port: port(t, proxy.Addr())}, true, "WhatsApp answers", "", "silent until the 500ms timeout"},
		{"proxy over TLS silent to HTTP", check.Port{Port: port(t, proxyTLS.Addr()), TLS: true}, true, "WhatsApp answers", "", "silent until"},
		{"proxy that closes", check.Port{Port: port(t, closes.Addr())}, true, "WhatsApp answers", "", "closes without answering"},
		{"TLS port in the clear", check.Port{Port: port(t, edge.Addr()), TLS: true}, false, "TLS fails", "", "TLS fails for a visitor"},
		{"another protocol", check.Port{Port: port(t, echo.Addr())}, false, "not like WhatsApp", "", "answers, but not with HTTP"},
		{"dead", check.Port{Port: deadPort(t)}, false, "refused", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := check.Run(context.Background(), "127.0.0.1", []check.Port{tc.p}, 500*time.Millisecond)[0]
			if r.OK != tc.ok || !strings.Contains(r.Verdict, tc.says) {
				t.Errorf("ok %v, %q; want %v, %q", r.OK, r.Verdict, tc.ok, tc.says)
			}
			if r.Web.Status != tc.web || !strings.Contains(r.Web.Note, tc.note) || (tc.note == "") != (r.Web.Note == "") {
				t.Errorf("web %+v; want %q, %q", r.Web, tc.web, tc.note)
			}
			if r.Web.GivesAway != (tc.note != "") {
				t.Errorf("gives away: %+v", r.Web)
			}
		})
	}

	rs := check.Run(context.Background(), "127.0.0.1", []check.Port{
		{Port: port(t, edgeTLS.Addr()), TLS: true}, {Port: port(t, proxy.Addr())}, {Port: port(t, edgeMedia.Addr()), Media: true}, {Port: deadPort(t)},
	}, 500*time.Millisecond)
	var out bytes.Buffer
	check.Write(&out, "127.0.0.1", rs)
	t.Logf("\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, want := range []string{
		"PORT   KIND          CONNECT       TLS    ANSWER  WEB          RESULT",
		" 200          ok: WhatsApp answers",
		" no web site  ok: WhatsApp answers",
		" 200          ok: WhatsApp's media server answers",
		"       -         -         -  -            refused",
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d: %q lacks %q", i, lines[i], want)
		}
	}
	for _, want := range []string{
		"Chat works through 127.0.0.1",
		"A stranger who does not speak WhatsApp sees a web site on ports " + strconv.Itoa(rs[0].Port.Port) + " (200), " + strconv.Itoa(rs[2].Port.Port) + " (200).",
		"Would give the proxy away to a scanner, which records an open port that is no web site: port " + strconv.Itoa(rs[1].Port.Port) + " (silent until the 500ms timeout).",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	rs = check.Run(context.Background(), "127.0.0.1", []check.Port{{Port: port(t, edge.Addr())}}, time.Second)
	out.Reset()
	check.Write(&out, "127.0.0.1", rs)
	if !strings.Contains(out.String(), "No open port gives the proxy away to a scanner") {
		t.Errorf("all web sites:\n%s", out.String())
	}
}

// TestChatFirst checks that chat ports are checked before media ports,
// whatever order they are given in, as an edge with
// FERRY_EDGE_MEDIA_AFTER_CHAT passes media only after a chat connection;
// and that a media port the edge does not pass is not reported as working.
func TestChatFirst(t *testing.T) {
	var chatted atomic.Bool
	chat := fake.Start(t, route(func(c net.Conn) { chatted.Store(true); fake.WhatsApp(c) }, site))
	media := fake.Start(t, mediaPort(t, chatted.Load, site))
	mp, cp := check.Port{Port: port(t, media.Addr()), Media: true}, check.Port{Port: port(t, chat.Addr())}

	rs := check.Run(context.Background(), "127.0.0.1", []check.Port{mp}, time.Second)
	if rs[0].OK || !strings.Contains(rs[0].Verdict, "FERRY_EDGE_MEDIA_AFTER_CHAT") || rs[0].Web.Status != "200" {
		t.Errorf("media before any chat: %+v", rs[0])
	}
	rs = check.Run(context.Background(), "127.0.0.1", []check.Port{mp, cp}, time.Second)
	if rs[0].Port != mp || !rs[0].OK || rs[1].Port != cp || !rs[1].OK {
		t.Errorf("media given first: %+v", rs)
	}
}

// TestParallel checks that ports are checked at the same time: each fake
// port answers its hello only once every port has sent one, so one after
// another the first would wait for the others until its timeout.
func TestParallel(t *testing.T) {
	const n = 4
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	var ports []check.Port
	for range n {
		var once sync.Once
		srv := fake.Start(t, route(func(c net.Conn) {
			if check.ReadHello(c) != nil {
				return
			}
			once.Do(arrived.Done)
			<-all
			c.Write(check.ServerHello())
			fake.Discard(c)
		}, site))
		ports = append(ports, check.Port{Port: port(t, srv.Addr())})
	}
	// Long enough never to run out on a loaded machine when parallel; the
	// test fails long before it, by the first port's verdict, when not.
	rs := check.Run(context.Background(), "127.0.0.1", ports, 20*time.Second)
	for i, r := range rs {
		if !r.OK {
			t.Errorf("port %d: %s", i, r.Verdict)
		}
	}
}

// proxyFirst is a PROXY protocol listener as a proxy+ listener of ferry's
// is to a trusted sender: it closes a connection that does not begin with
// a PROXY v1 header, and hands the rest to h.
func proxyFirst(h func(net.Conn)) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "PROXY TCP4 127.0.0.1 127.0.0.1 ") || !strings.HasSuffix(line, "\r\n") {
			return
		}
		h(peeked{c, br})
	}
}

// TestProxyProtocolPort checks that a port waiting for a PROXY header is
// said to be one, plain and TLS, with what answers behind the header, and
// is not counted as chat working; and that a port closing whatever comes
// is not taken for one.
func TestProxyProtocolPort(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	plain := fake.Start(t, proxyFirst(route(fake.WhatsApp, site)))
	overTLS := fake.Start(t, proxyFirst(func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{crt}})
		if tc.Handshake() == nil {
			route(fake.WhatsApp, site)(tc)
		}
	}))
	closing := fake.Start(t, func(net.Conn) {})
	rs := check.Run(context.Background(), "127.0.0.1", []check.Port{
		{Port: port(t, plain.Addr())}, {Port: port(t, overTLS.Addr()), TLS: true}, {Port: port(t, closing.Addr())},
	}, 5*time.Second)
	for _, r := range rs[:2] {
		if r.OK || !r.ProxyProtocol || !strings.Contains(r.Verdict, "waits for a PROXY protocol header") || !strings.Contains(r.Verdict, "after a header: ok: WhatsApp answers") || r.Web.GivesAway {
			t.Errorf("port %d: %+v", r.Port.Port, r)
		}
	}
	if r := rs[2]; r.ProxyProtocol || strings.Contains(r.Verdict, "PROXY") {
		t.Errorf("a port that closes everything: %+v", r)
	}
	if check.Works(rs) {
		t.Error("chat works on a PROXY protocol port, which the app cannot use")
	}
	var out bytes.Buffer
	check.Write(&out, "127.0.0.1", rs)
	if !strings.Contains(out.String(), "PROXY") || strings.Contains(out.String(), strconv.Itoa(rs[0].Port.Port)+" (closes") {
		t.Errorf("table:\n%s", out.String())
	}
}

// TestStandaloneVerdicts checks that a standalone's failures do not blame
// a tunnel it does not have, and that an edge's do.
func TestStandaloneVerdicts(t *testing.T) {
	closing := fake.Start(t, route(func(net.Conn) {}, site))
	p := []check.Port{{Port: port(t, closing.Addr())}}
	if r := check.RunTarget(context.Background(), "127.0.0.1", p, 5*time.Second, true)[0]; strings.Contains(r.Verdict, "tunnel") || strings.Contains(r.Verdict, "origin") || !strings.Contains(r.Verdict, "cannot reach WhatsApp") {
		t.Errorf("standalone: %s", r.Verdict)
	}
	if r := check.Run(context.Background(), "127.0.0.1", p, 5*time.Second)[0]; !strings.Contains(r.Verdict, "tunnel is down") {
		t.Errorf("edge: %s", r.Verdict)
	}
}
