package cert

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"ferry/internal/fake"
	"ferry/internal/pebble"
)

// edgeSide stands for the edge's listeners on 127.0.0.1: a TLS one whose
// certificates come from a Manager, wired as the edge must (acme-tls/1
// answered by ALPN only to a hello that offers it), and an HTTP one whose
// handler calls HTTPChallenge first. Answers to the CA wait for open, so
// a test can look at what is served before any certificate can exist.
type edgeSide struct {
	tlsLn, httpLn net.Listener
	m             atomic.Pointer[Manager]
	open          chan struct{}
	challenges    atomic.Int32 // answered, of either type
	srv           *http.Server
	wg            sync.WaitGroup
}

func newEdgeSide(t *testing.T) *edgeSide {
	t.Helper()
	e := &edgeSide{open: make(chan struct{})}
	var err error
	if e.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if e.httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	getCert := func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return e.m.Load().GetCertificate(h) }
	base := &tls.Config{GetCertificate: getCert, NextProtos: []string{"h2", "http/1.1"}}
	challenge := base.Clone()
	challenge.NextProtos = []string{"acme-tls/1"}
	base.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(h.SupportedProtos, "acme-tls/1") {
			<-e.open
			e.challenges.Add(1)
			return challenge, nil
		}
		return nil, nil
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := e.tlsLn.Accept()
			if err != nil {
				return
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, base)
				if tc.Handshake() == nil {
					// Let the client finish: openssl reads until the
					// server closes or stdin ends.
					tc.Read(make([]byte, 1))
				}
			}()
		}
	}()
	e.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			<-e.open
		}
		if e.m.Load().HTTPChallenge(w, r) {
			e.challenges.Add(1)
			return
		}
		http.NotFound(w, r)
	})}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.srv.Serve(e.httpLn)
	}()
	t.Cleanup(e.close)
	return e
}

// close stops the listeners and waits for their goroutines.
func (e *edgeSide) close() {
	select {
	case <-e.open:
	default:
		close(e.open)
	}
	e.tlsLn.Close()
	e.srv.Close()
	e.wg.Wait()
}

// served returns the leaf certificate the TLS listener serves to a hello
// with sni (none if empty).
func (e *edgeSide) served(t *testing.T, sni string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", e.tlsLn.Addr().String(), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// TestACMEPebble obtains certificates from a real Pebble, once proving
// control by HTTP-01 alone and once by TLS-ALPN-01 alone, for a name and an
// IP literal, checks them with openssl as a client would, and then, with
// Pebble gone, has a fresh Manager on the same Dir serve them.
func TestACMEPebble(t *testing.T) {
	for _, tc := range []struct {
		name              string
		noHTTP, noTLSALPN bool
	}{
		{name: "http-01", noTLSALPN: true},
		{name: "tls-alpn-01", noHTTP: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEdgeSide(t)
			p := pebble.Start(t, port(t, e.httpLn), port(t, e.tlsLn))
			fallback, err := SelfSigned()
			if err != nil {
				t.Fatal(err)
			}
			logs := &fake.SyncBuffer{}
			a := ACME{
				CA:       p.Directory,
				Dir:      t.TempDir(),
				CARoot:   p.CARoot,
				Hosts:    []string{"localhost", "127.0.0.1"},
				HTTPPort: port(t, e.httpLn),
				TLSPort:  port(t, e.tlsLn),
				Log:      slog.New(slog.NewTextHandler(logs, nil)),

				disableHTTP:    tc.noHTTP,
				disableTLSALPN: tc.noTLSALPN,
			}
			m, stop := startManager(t, a, fallback)
			e.m.Store(m)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("ferry's log:\n%s", logs.String())
				}
			})

			// Before any challenge can be answered: the fallback.
			for _, sni := range []string{"localhost", ""} {
				if got := e.served(t, sni); !bytes.Equal(got, fallback.Certificate[0]) {
					t.Fatalf("SNI %q: served a certificate other than the fallback before issuance", sni)
				}
			}
			close(e.open)
			// With SNI: the name's certificate. Without (a phone given an
			// IP literal): the certificate of the address it connected to.
			// Past certmagic's first retry, a minute after a failed
			// attempt: Pebble fails one now and then.
			eventually(t, 100*time.Second, "certificates from pebble", func() bool {
				return isFor(t, e.served(t, "localhost"), "localhost") && isFor(t, e.served(t, ""), "127.0.0.1")
			})
			if e.challenges.Load() == 0 {
				t.Fatal("certificates issued without a challenge answered by the edge's listeners")
			}

			root := p.IssuingRoot(t)
			addr := e.tlsLn.Addr().String()
			opensslVerifies(t, addr, root, "-servername", "localhost", "-verify_hostname", "localhost")
			opensslVerifies(t, addr, root, "-noservername", "-verify_ip", "127.0.0.1")

			// A name not among Hosts, and no SNI on an address not among
			// them: Hosts[0]'s certificate.
			name := e.served(t, "localhost")
			for _, hello := range []*tls.ClientHelloInfo{
				{ServerName: "elsewhere.example", Conn: fakeConn{local: "127.0.0.1:443"}},
				{Conn: fakeConn{local: "127.0.0.2:443"}},
			} {
				c, err := m.GetCertificate(hello)
				if err != nil || !bytes.Equal(c.Certificate[0], name) {
					t.Fatalf("hello %q on %v: not the certificate of Hosts[0] (err %v)", hello.ServerName, hello.Conn.LocalAddr(), err)
				}
			}
			for _, want := range []string{"certificate issued", "host=localhost", "host=127.0.0.1"} {
				if !strings.Contains(logs.String(), want) {
					t.Fatalf("log lacks %q", want)
				}
			}

			// Pebble gone, a fresh start on the same Dir serves the stored
			// certificate without the CA.
			ip := e.served(t, "")
			p.Stop()
			stop()
			m2, _ := startManager(t, a, fallback)
			e.m.Store(m2)
			eventually(t, 10*time.Second, "the stored certificates", func() bool {
				return bytes.Equal(e.served(t, "localhost"), name) && bytes.Equal(e.served(t, ""), ip)
			})
		})
	}
}

// isFor reports whether the certificate der is for host alone.
func isFor(t *testing.T, der []byte, host string) bool {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	names := c.DNSNames
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return slices.Equal(names, []string{host})
}

// TestACMEUnreachable starts Managers whose CA refuses connections, or
// accepts them and never answers: Start returns at once, handshakes get the
// fallback at once, the failure is logged with its cause, and nothing of
// certmagic's outlives the context.
func TestACMEUnreachable(t *testing.T) {
	refused := freePort(t)
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var holeDone sync.WaitGroup
	holeDone.Add(1)
	go func() {
		defer holeDone.Done()
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		hole.Close()
		holeDone.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	fallback, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for _, ca := range []string{refused, hole.Addr().String()} {
		logs := &fake.SyncBuffer{}
		a := ACME{
			CA:    "https://" + ca + "/dir",
			Dir:   t.TempDir(),
			Hosts: []string{"localhost", "127.0.0.1"},
			Log:   slog.New(slog.NewTextHandler(logs, nil)),
		}
		m, stop := startManager(t, a, fallback)
		for _, hello := range []*tls.ClientHelloInfo{
			{ServerName: "localhost", Conn: fakeConn{local: "127.0.0.1:443"}},
			{Conn: fakeConn{local: "127.0.0.1:443"}},
		} {
			c, err := m.GetCertificate(hello)
			if err != nil || c != m.fallback {
				t.Fatalf("CA %s, hello %q: not the fallback (err %v)", ca, hello.ServerName, err)
			}
		}
		if ca == refused {
			eventually(t, 10*time.Second, "warning of the failure", func() bool {
				return strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "connection refused")
			})
		}
		stop()
	}
}

// TestHTTPChallengeLeavesOthers checks that HTTPChallenge answers only
// challenges, for its hosts, under way; and that a hello offering
// acme-tls/1 with no challenge under way fails rather than get a
// certificate.
func TestHTTPChallengeLeavesOthers(t *testing.T) {
	fallback, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := startManager(t, ACME{CA: "https://" + freePort(t) + "/dir", Dir: t.TempDir(), Hosts: []string{"localhost"}}, fallback)
	for _, target := range []string{
		"http://localhost/",
		"http://elsewhere.example/.well-known/acme-challenge/abc",
		"http://localhost/.well-known/acme-challenge/abc",
	} {
		w := httptest.NewRecorder()
		if m.HTTPChallenge(w, httptest.NewRequest("GET", target, nil)) || w.Body.Len() != 0 {
			t.Fatalf("%s: answered", target)
		}
	}
	hello := &tls.ClientHelloInfo{ServerName: "localhost", SupportedProtos: []string{"h2", "acme-tls/1"}, Conn: fakeConn{local: "127.0.0.1:443"}}
	if c, err := m.GetCertificate(hello); err == nil {
		t.Fatalf("acme-tls/1 with no challenge: got a certificate %v", c)
	}
}

// TestGetCertificateChooses checks which certificate a hello gets, with
// certificates put in the Manager's cache by hand: its SNI's if that is one
// of the hosts, else Hosts[0]'s; without SNI, that of the address it
// reached if that is one of the hosts, else Hosts[0]'s; and the fallback
// for a host whose certificate is missing or has expired.
func TestGetCertificateChooses(t *testing.T) {
	fallback, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"a.example", "b.example", "192.0.2.7", "c.example"}
	m, _ := startManager(t, ACME{CA: "https://" + freePort(t) + "/dir", Dir: t.TempDir(), Hosts: hosts}, fallback)
	now := time.Now()
	certs := map[string][]byte{}
	for _, h := range hosts[:3] {
		c := certFor(t, h, now.Add(-time.Hour), now.Add(time.Hour))
		if _, err := m.cfg.CacheUnmanagedTLSCertificate(context.Background(), c, nil); err != nil {
			t.Fatal(err)
		}
		certs[h] = c.Certificate[0]
	}
	expired := certFor(t, "c.example", now.Add(-2*time.Hour), now.Add(-time.Hour))
	if _, err := m.cfg.CacheUnmanagedTLSCertificate(context.Background(), expired, nil); err != nil {
		t.Fatal(err)
	}
	certs[""] = fallback.Certificate[0]
	for _, tc := range []struct{ sni, local, want string }{
		{"a.example", "198.51.100.1:443", "a.example"},
		{"B.Example", "198.51.100.1:443", "b.example"},
		{"elsewhere.example", "198.51.100.1:443", "a.example"},
		{"", "198.51.100.1:443", "a.example"},
		{"", "192.0.2.7:443", "192.0.2.7"},
		{"c.example", "198.51.100.1:443", ""},
	} {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni, Conn: fakeConn{local: tc.local}})
		if err != nil || !bytes.Equal(c.Certificate[0], certs[tc.want]) {
			t.Errorf("SNI %q on %s: not %q's certificate (err %v)", tc.sni, tc.local, tc.want, err)
		}
	}
}

// certFor returns a self-signed certificate for host, valid from notBefore
// to notAfter.
func certFor(t *testing.T, host string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notBefore, NotAfter: notAfter}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestIPIssuers checks the profiles IP certificates are asked under:
// Let's Encrypt's "shortlived" alone, which is how it issues them; from
// another CA, "shortlived", then no profile (Pebble 2.4 offers none).
func TestIPIssuers(t *testing.T) {
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return nil, errors.New("unused") },
		Logger:           zap.NewNop(),
	})
	defer cache.Stop()
	cfg := certmagic.New(cache, certmagic.Config{Storage: &certmagic.FileStorage{Path: t.TempDir()}, Logger: zap.NewNop()})
	for _, tc := range []struct {
		ca       string
		profiles []string
	}{
		{certmagic.LetsEncryptProductionCA, []string{"shortlived"}},
		{certmagic.LetsEncryptStagingCA, []string{"shortlived"}},
		{"https://127.0.0.1:14000/dir", []string{"shortlived", ""}},
	} {
		var profiles []string
		for _, iss := range ipIssuers(cfg, certmagic.ACMEIssuer{CA: tc.ca, Logger: zap.NewNop()}) {
			profiles = append(profiles, iss.(*certmagic.ACMEIssuer).Profile)
		}
		if !slices.Equal(profiles, tc.profiles) {
			t.Errorf("%s: profiles %q, want %q", tc.ca, profiles, tc.profiles)
		}
	}
}

// TestStartRefuses checks the configurations Start rejects, naming what is
// wrong.
func TestStartRefuses(t *testing.T) {
	fallback, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ok := ACME{CA: "https://127.0.0.1:1/dir", Dir: t.TempDir(), Hosts: []string{"localhost"}}
	for _, tc := range []struct {
		want string
		edit func(*ACME)
	}{
		{"CA is empty", func(a *ACME) { a.CA = "" }},
		{"http://x", func(a *ACME) { a.CA = "http://x" }},
		{"Dir is empty", func(a *ACME) { a.Dir = "" }},
		{"Hosts is empty", func(a *ACME) { a.Hosts = nil }},
		{"a b", func(a *ACME) { a.Hosts = []string{"a b"} }},
		{"/nonexistent/roots.pem", func(a *ACME) { a.CARoot = "/nonexistent/roots.pem" }},
	} {
		a := ok
		tc.edit(&a)
		ctx, cancel := context.WithCancel(context.Background())
		m, err := a.Start(ctx, fallback)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Start with %q: %v, %v", tc.want, m, err)
		}
	}
}

// startManager starts a Manager for the test; stop, also called when the
// test ends, ends its context, waits for its cache to stop, and then for
// every goroutine of certmagic's to end (but for the rate limiter it never
// stops, which TestMain ignores).
func startManager(t *testing.T, a ACME, fallback tls.Certificate) (*Manager, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := a.Start(ctx, fallback)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-m.done
			certmagicIdle(t)
		})
	}
	t.Cleanup(stop)
	return m, stop
}

// certmagicIdle waits until no goroutine is in certmagic's code, but its
// rate limiter's. A lock's keeper sleeps 5 s between looks at its lock file,
// so it may see the lock released up to 5 s late.
func certmagicIdle(t *testing.T) {
	t.Helper()
	var busy []string
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		busy = busy[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "github.com/caddyserver/certmagic.") && !strings.Contains(g, "certmagic.(*RingBufferRateLimiter).loop") {
				busy = append(busy, g)
			}
		}
		if len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("certmagic goroutines outlive the context:\n%s", strings.Join(busy, "\n\n"))
		}
		<-tick.C
	}
}

// opensslVerifies runs openssl s_client against addr, trusting root alone,
// with args, and fails the test unless the chain verifies.
func opensslVerifies(t *testing.T, addr, root string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl is not installed; its checks are skipped")
		return
	}
	cmd := exec.Command(bin, append([]string{"s_client", "-connect", addr, "-verify_return_error", "-CAfile", root}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Verify return code: 0 (ok)")) {
		t.Fatalf("openssl s_client %v: %v\n%s", args, err, out)
	}
}

// fakeConn is the connection of a hello made by a test.
type fakeConn struct {
	net.Conn
	local string
}

func (c fakeConn) LocalAddr() net.Addr  { return addr(c.local) }
func (c fakeConn) RemoteAddr() net.Addr { return addr("192.0.2.1:50000") }

type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }
