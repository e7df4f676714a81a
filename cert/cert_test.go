package cert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"
)

// TestSelfSigned checks the certificate a scanner would see: ECDSA P-256, a
// random name, a new one at every start.
func TestSelfSigned(t *testing.T) {
	names := map[string]bool{}
	for range 5 {
		c, err := SelfSigned()
		if err != nil {
			t.Fatal(err)
		}
		key, ok := c.Leaf.PublicKey.(*ecdsa.PublicKey)
		if !ok || key.Curve != elliptic.P256() {
			t.Fatalf("key %T, want ECDSA P-256", c.Leaf.PublicKey)
		}
		if len(c.Leaf.DNSNames) != 1 || c.Leaf.DNSNames[0] != c.Leaf.Subject.CommonName {
			t.Fatalf("names %v / %q", c.Leaf.DNSNames, c.Leaf.Subject.CommonName)
		}
		names[c.Leaf.Subject.CommonName] = true
	}
	if len(names) != 5 {
		t.Fatalf("5 certificates share names: %v", names)
	}
}

func TestLoadRefusesMissingFiles(t *testing.T) {
	if _, err := Load("/nonexistent/cert.pem", "/nonexistent/key.pem"); err == nil {
		t.Fatal("loaded missing files")
	}
}
