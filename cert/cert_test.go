package cert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the tests on leaked goroutines. certmagic starts a rate
// limiter per CA and account, for the whole process, and never stops it
// (its code says so: "TODO: stop rate limiter when it is
// garbage-collected"); that one goroutine is ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"))
}

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

// TestSelfSignedValidity checks that a certificate is valid from the moment
// it is made, backdated by a few minutes at most and never postdated, for
// term; and that two certificates share no name, serial or key.
func TestSelfSignedValidity(t *testing.T) {
	names := map[string]bool{}
	serials := map[string]bool{}
	keys := map[string]bool{}
	skews := map[time.Duration]bool{}
	for range 50 {
		before := time.Now()
		c, err := SelfSigned()
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		l := c.Leaf
		if l.NotBefore.After(after) {
			t.Fatalf("NotBefore %v is after the certificate was made (%v)", l.NotBefore, after)
		}
		// NotBefore is to the second, so allow the second it was cut from.
		if earliest := before.Add(-10*time.Minute - time.Second); l.NotBefore.Before(earliest) {
			t.Fatalf("NotBefore %v is more than 10 minutes before %v", l.NotBefore, before)
		}
		if got := l.NotAfter.Sub(l.NotBefore); got != term {
			t.Fatalf("valid for %v, want %v", got, term)
		}
		name, serial := l.Subject.CommonName, l.SerialNumber.String()
		key := string(l.RawSubjectPublicKeyInfo)
		if names[name] || serials[serial] || keys[key] {
			t.Fatalf("certificate %d repeats a name (%s), serial (%s) or key", len(names), name, serial)
		}
		names[name], serials[serial], keys[key] = true, true, true
		skews[before.Truncate(time.Second).Sub(l.NotBefore)] = true
	}
	if len(skews) < 2 {
		t.Fatalf("50 certificates all backdated by the same %v", skews)
	}
}

func TestLoadRefusesMissingFiles(t *testing.T) {
	if _, err := Load("/nonexistent/cert.pem", "/nonexistent/key.pem"); err == nil {
		t.Fatal("loaded missing files")
	}
}
