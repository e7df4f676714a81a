// Package pebble runs Pebble, the ACME test server (Debian's pebble
// package), on loopback for a test, so that ACME can be tested for real.
package pebble

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"ferry/internal/fake"
)

// Server is a Pebble run by one test. Its own HTTPS listener (the
// directory and the management API) has a certificate from a CA made for
// the test, as a private CA's would; the certificates it issues chain to
// another root, made anew at each start (IssuingRoot).
type Server struct {
	// Directory is the URL of the ACME directory.
	Directory string
	// CARoot is the path of a PEM file of the CA of Pebble's HTTPS
	// certificate, to be trusted for Directory.
	CARoot string

	mgmt   string       // host:port of the management API
	client *http.Client // trusts CARoot
	cmd    *exec.Cmd
	exited chan struct{}
	out    *fake.SyncBuffer
}

// Start runs Pebble with its validation authority checking HTTP-01 on
// httpPort and TLS-ALPN-01 on tlsPort of each identifier's address, waits
// until it listens, and stops it when the test ends (logging its output if
// the test failed). It skips the test if pebble is not installed, or fails
// it if the CI variable is set: CI installs Debian's pebble.
func Start(t testing.TB, httpPort, tlsPort int) *Server {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("pebble is not installed; CI installs it (Debian: apt-get install pebble)")
		}
		t.Skip("pebble is not installed (Debian: apt-get install pebble); CI installs it")
	}
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := httpsCert(t)
	s := &Server{CARoot: filepath.Join(dir, "ca.pem"), exited: make(chan struct{}), out: &fake.SyncBuffer{}}
	listen, mgmt := freePort(t), freePort(t)
	s.Directory = "https://" + listen + "/dir"
	s.mgmt = mgmt
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	confJSON, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM, "pebble.json": confJSON} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	s.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}

	s.cmd = exec.Command(bin, "-config", filepath.Join(dir, "pebble.json"), "-strict=false")
	// No sleeps before validations, and no nonces rejected at random.
	s.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble's output:\n%s", s.out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !listening(listen, mgmt) {
		select {
		case <-s.exited:
			t.Fatalf("pebble exited: %s", s.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble does not listen after 10s: %s", s.out.String())
		}
	}
	return s
}

// listening reports whether every one of addrs accepts a connection.
func listening(addrs ...string) bool {
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// Stop kills Pebble, by its own process, and waits for it to exit. It may
// be called more than once; Start has it called when the test ends.
func (s *Server) Stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

// Output is what Pebble has written so far.
func (s *Server) Output() string { return s.out.String() }

// IssuingRoot writes the root Pebble issues under to a PEM file and
// returns its path.
func (s *Server) IssuingRoot(t testing.TB) string {
	t.Helper()
	resp, err := s.client.Get("https://" + s.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	root, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble's root: %s %v", resp.Status, err)
	}
	path := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(path, root, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// httpsCert returns the PEM of a CA, and of a certificate and key it
// signed for 127.0.0.1 and localhost.
func httpsCert(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ferry test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// freePort returns a 127.0.0.1 address whose port was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
