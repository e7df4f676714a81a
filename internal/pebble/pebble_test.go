package pebble

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"
)

// TestStart checks what a test gets from Start: a directory whose HTTPS
// verifies against CARoot, an issuing root that is a CA certificate, and a
// Stop (called twice here) after which nothing listens.
func TestStart(t *testing.T) {
	s := Start(t, 5002, 5001)
	pemBytes, err := os.ReadFile(s.CARoot)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("CARoot holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(s.Directory)
	if err != nil {
		t.Fatal(err)
	}
	var dir map[string]any
	err = json.NewDecoder(resp.Body).Decode(&dir)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || dir["newOrder"] == nil {
		t.Fatalf("directory: %s %v %v", resp.Status, dir, err)
	}

	root, err := os.ReadFile(s.IssuingRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(root)
	if block == nil {
		t.Fatalf("issuing root: no PEM: %q", root)
	}
	if c, err := x509.ParseCertificate(block.Bytes); err != nil || !c.IsCA {
		t.Fatalf("issuing root: %v, CA %v", err, c != nil && c.IsCA)
	}

	s.Stop()
	s.Stop()
	u, _ := url.Parse(s.Directory)
	if c, err := net.Dial("tcp", u.Host); err == nil {
		c.Close()
		t.Fatal("pebble still listens after Stop")
	}
}
