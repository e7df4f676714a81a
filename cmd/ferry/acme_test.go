package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry/internal/fake"
	"ferry/internal/pebble"
)

// TestACMEBinary runs `ferry standalone` (the edge's client listeners) with
// FERRY_EDGE_ACME against a real Pebble whose validation authority reaches
// the binary's own plain and tls listeners, once able to use both, and once
// each with the other challenge's port leading nowhere, so that HTTP-01
// alone (on the plain listener, through the first-byte routing to the web
// site) and TLS-ALPN-01 alone (on the tls listener) must work. The
// certificates obtained are accepted by openssl trusting Pebble's root
// alone, with SNI and without (a phone given an IP literal); the web site
// and chat answer on both listeners throughout.
func TestACMEBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs pebble")
	}
	clearEnv(t)
	openssl := lookOpenssl(t)
	bin := build(t)
	echo := fake.Start(t, fake.Echo)
	site := siteDir(t)
	for _, tc := range []struct {
		name           string
		noHTTP, noALPN bool
	}{
		{name: "both"},
		{name: "http-01", noALPN: true},
		{name: "tls-alpn-01", noHTTP: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, secure := freeAddr(t), freeAddr(t)
			httpPort, tlsPort := portOf(t, plain), portOf(t, secure)
			if tc.noHTTP {
				httpPort = portOf(t, freeAddr(t))
			}
			if tc.noALPN {
				tlsPort = portOf(t, freeAddr(t))
			}
			p := pebble.Start(t, httpPort, tlsPort)
			root, roots := issuingRoot(t, p)
			began := time.Now()
			a := startACME(t, bin, plain, secure, p.Directory, p.CARoot, echo.Addr(), site)
			getSite(t, "http://"+plain+"/", nil)

			// Past certmagic's first retry, a minute after a failed
			// attempt: Pebble fails one now and then.
			deadline := time.Now().Add(100 * time.Second)
			var out string
			for {
				var okName, okIP bool
				okName, out = opensslAccepts(t, openssl, secure, root, "-servername", "localhost", "-verify_hostname", "localhost")
				if okName {
					okIP, out = opensslAccepts(t, openssl, secure, root, "-noservername", "-verify_ip", "127.0.0.1")
				}
				if okName && okIP {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no certificates from pebble that openssl accepts after 60s; last try:\n%s", out)
				}
				select {
				case <-a.done:
					t.Fatal("ferry exited")
				case <-time.After(250 * time.Millisecond):
				}
			}
			t.Logf("certificates accepted by openssl %v after the start", time.Since(began).Round(time.Millisecond))
			a.waitLog(t, "acme: certificate issued", "host=localhost")
			a.waitLog(t, "acme: certificate issued", "host=127.0.0.1")

			// A client that verifies as a browser does gets the site and
			// chat through the tls listener, with SNI and without.
			for _, name := range []string{"localhost", "127.0.0.1"} {
				conf := &tls.Config{RootCAs: roots, ServerName: name}
				getSite(t, "https://"+secure+"/", conf)
				chat(t, secure, conf)
			}
			getSite(t, "http://"+plain+"/", nil)
			chat(t, plain, nil)
			a.stop(t)
		})
	}
}

// TestACMEBinaryNoCA runs `ferry standalone` with FERRY_EDGE_ACME pointed at
// a CA that refuses connections, and at one that accepts them and never
// answers: handshakes complete at once, with SNI and without, with the
// self-signed certificate (which does not verify against Pebble's root);
// chat reaches the target on both listeners, and the web site answers on
// the plain one.
func TestACMEBinaryNoCA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs pebble")
	}
	clearEnv(t)
	openssl := lookOpenssl(t)
	bin := build(t)
	echo := fake.Start(t, fake.Echo)
	site := siteDir(t)
	// A Pebble for its roots; no standalone here can reach it.
	p := pebble.Start(t, portOf(t, freeAddr(t)), portOf(t, freeAddr(t)))
	root, roots := issuingRoot(t, p)
	for _, ca := range []struct{ name, addr string }{{"refused", freeAddr(t)}, {"silent", silentCA(t)}} {
		t.Run(ca.name, func(t *testing.T) {
			plain, secure := freeAddr(t), freeAddr(t)
			b := startACME(t, bin, plain, secure, "https://"+ca.addr+"/dir", p.CARoot, echo.Addr(), site)
			for _, sni := range []string{"localhost", ""} {
				began := time.Now()
				leaf := servedLeaf(t, secure, sni)
				if d := time.Since(began); d > 3*time.Second {
					t.Errorf("SNI %q: the handshake took %v", sni, d)
				}
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots}); err == nil {
					t.Errorf("SNI %q: the certificate verifies against pebble's root with no CA", sni)
				}
				if !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
					t.Errorf("SNI %q: not the self-signed certificate: issuer %s", sni, leaf.Issuer)
				}
			}
			if ok, out := opensslAccepts(t, openssl, secure, root, "-servername", "localhost"); ok {
				t.Errorf("openssl accepts the certificate served with no CA:\n%s", out)
			}
			chat(t, plain, nil)
			chat(t, secure, &tls.Config{InsecureSkipVerify: true})
			chat(t, secure, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
			getSite(t, "http://"+plain+"/", nil)
			b.stop(t)
		})
	}
}

// TestACMEBinaryRefuses checks that `ferry standalone` refuses, at start
// (exit 2, naming the variable), ACME settings it could never obtain a
// certificate with: a directory URL that is not https://, and a
// FERRY_EDGE_ACME_DIR it cannot create or write in. certmagic checks its
// storage before it emits any event, logs the failure only to its own
// (discarded) log and never retries, so without a check of ferry's the
// binary would serve the self-signed certificate for ever and say nothing.
func TestACMEBinaryRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	clearEnv(t)
	bin := build(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		env        []string
	}{
		{"http-directory", "FERRY_EDGE_ACME:", []string{"FERRY_EDGE_ACME=http://127.0.0.1:1/dir", "FERRY_EDGE_ACME_DIR=" + t.TempDir()}},
		{"dir-unusable", "FERRY_EDGE_ACME_DIR:", []string{"FERRY_EDGE_ACME=https://127.0.0.1:1/dir", "FERRY_EDGE_ACME_DIR=" + filepath.Join(file, "acme")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "standalone")
			cmd.Env = append(os.Environ(), append([]string{
				"FERRY_ADMIN=",
				"FERRY_EDGE_LISTEN=tcp://" + freeAddr(t) + "/chat80,tls://" + freeAddr(t) + "/chat",
				"FERRY_ORIGIN_TARGETS=chat=127.0.0.1:9,chat80=127.0.0.1:9",
				"FERRY_EDGE_PUBLIC_HOST=localhost",
			}, tc.env...)...)
			out, err := cmd.CombinedOutput() // killed, by its own pid, at the timeout
			if ctx.Err() != nil {
				t.Fatalf("ferry still runs after 5s rather than refuse the setting:\n%s", out)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitConfig || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %v, want %d naming %s:\n%s", err, exitConfig, tc.want, out)
			}
		})
	}
}

// lookOpenssl returns the path of openssl; without it, it skips the test,
// or fails it when the CI variable is set.
func lookOpenssl(t *testing.T) string {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is not installed; CI installs it")
		}
		t.Skip("openssl is not installed")
	}
	return openssl
}

// issuingRoot returns the PEM file of the root p issues under, and a pool
// of it alone.
func issuingRoot(t *testing.T, p *pebble.Server) (string, *x509.CertPool) {
	t.Helper()
	root := p.IssuingRoot(t)
	roots := x509.NewCertPool()
	if pemBytes, err := os.ReadFile(root); err != nil || !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("pebble's root: %v", err)
	}
	return root, roots
}

// acmeProc is a `ferry standalone` started by startACME, its log kept.
type acmeProc struct {
	*proc
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{} // closed once its stderr has ended
}

// startACME starts `ferry standalone` with a plain and a tls listener, both
// routed to target, the web site dir, and FERRY_EDGE_ACME=ca (trusting
// caRoot) for localhost and 127.0.0.1, its ACME directory a fresh one; and
// waits for its start line.
func startACME(t *testing.T, bin, plain, secure, ca, caRoot, target, dir string) *acmeProc {
	t.Helper()
	acmeDir := t.TempDir() // removed after the process is killed
	env := []string{
		"FERRY_ADMIN=",
		"FERRY_EDGE_LISTEN=tcp://" + plain + "/chat80,tls://" + secure + "/chat",
		"FERRY_ORIGIN_TARGETS=chat=" + target + ",chat80=" + target,
		"FERRY_EDGE_DECOY=" + dir,
		"FERRY_EDGE_ACME=" + ca,
		"FERRY_EDGE_ACME_CA_ROOT=" + caRoot,
		"FERRY_EDGE_ACME_DIR=" + acmeDir,
		"FERRY_EDGE_PUBLIC_HOST=localhost,127.0.0.1",
	}
	a := &acmeProc{proc: start(t, bin, env, "", "standalone"), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for line := range a.lines {
			a.mu.Lock()
			a.log.WriteString(line + "\n")
			a.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ferry's log (%s):\n%s", ca, a.logged())
		}
	})
	a.waitLog(t, "ferry standalone starting")
	return a
}

func (a *acmeProc) logged() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// waitLog waits up to 10 s for a line of the log that holds every one of
// parts.
func (a *acmeProc) waitLog(t *testing.T, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for line := range strings.Lines(a.logged()) {
			n := 0
			for _, p := range parts {
				if strings.Contains(line, p) {
					n++
				}
			}
			if n == len(parts) {
				return
			}
		}
		select {
		case <-a.done:
			t.Fatalf("ferry exited without logging %q", parts)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q after 10s", parts)
		}
	}
}

// stop sends SIGTERM and expects the process to exit 0 within 10 s, its
// ACME stopped with it.
func (a *acmeProc) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatal("ferry has not exited 10s after SIGTERM")
	}
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("ferry's exit: %v", err)
	}
}

// silentCA returns the address of a listener that accepts connections and
// never answers, until the test ends.
func silentCA(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// servedLeaf returns the certificate addr serves to a hello with sni (none
// if empty), unverified, as WhatsApp accepts any.
func servedLeaf(t *testing.T, addr, sni string) *x509.Certificate {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// opensslAccepts runs a fresh openssl s_client against addr, trusting root
// alone, with args, and reports whether the chain verified, and its output.
func opensslAccepts(t *testing.T, openssl, addr, root string, args ...string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, append([]string{"s_client", "-connect", addr, "-verify_return_error", "-CAfile", root}, args...)...)
	out, err := cmd.CombinedOutput()
	return err == nil && bytes.Contains(out, []byte("Verify return code: 0 (ok)")), string(out)
}

// chat sends a web client's opening to addr, over TLS with conf when set,
// and expects the echo target to send it back byte for byte.
func chat(t *testing.T, addr string, conf *tls.Config) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if conf != nil {
		c = tls.Client(c, conf)
	}
	if _, err := c.Write(fake.OpeningWeb); err != nil {
		t.Fatalf("chat through %s: %v", addr, err)
	}
	got := make([]byte, len(fake.OpeningWeb))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, fake.OpeningWeb) {
		t.Fatalf("chat through %s: %x, %v", addr, got, err)
	}
}

// getSite expects url (over TLS with conf when set) to answer 200 with the
// page of siteDir.
func getSite(t *testing.T, url string, conf *tls.Config) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Hello.") {
		t.Fatalf("GET %s: %s %q", url, resp.Status, body)
	}
}

// portOf returns the port of a HOST:PORT.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
