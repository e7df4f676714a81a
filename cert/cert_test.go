package cert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
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
		if err := c.Leaf.VerifyHostname(c.Leaf.Subject.CommonName); err != nil || !slices.Contains(c.Leaf.DNSNames, c.Leaf.Subject.CommonName) {
			t.Fatalf("names %v / %q: %v", c.Leaf.DNSNames, c.Leaf.Subject.CommonName, err)
		}
		names[c.Leaf.Subject.CommonName] = true
	}
	if len(names) != 5 {
		t.Fatalf("5 certificates share names: %v", names)
	}
}

// TestSelfSignedValidity checks that a certificate is valid from the moment
// it is made, backdated by a few minutes at most and never postdated, for
// one of terms; and that two certificates share no name, serial or key.
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
		if got := l.NotAfter.Sub(l.NotBefore); !slices.Contains(terms, got) {
			t.Fatalf("valid for %v, want one of %v", got, terms)
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

// TestSelfSignedVaries checks that the certificates of tunnel listeners
// (CommonKeys) vary as CAs' do, in key, serial length, subject, names and
// term, and that each one is valid, for its name, as a self-signed
// certificate trusted as its own root.
func TestSelfSignedVaries(t *testing.T) {
	seen := map[string]map[string]bool{}
	saw := func(what, v string) {
		if seen[what] == nil {
			seen[what] = map[string]bool{}
		}
		seen[what][v] = true
	}
	for range 40 {
		c, err := SelfSignedWith(CommonKeys...)
		if err != nil {
			t.Fatal(err)
		}
		l := c.Leaf
		switch k := l.PublicKey.(type) {
		case *ecdsa.PublicKey:
			saw("key", k.Curve.Params().Name)
		case *rsa.PublicKey:
			saw("key", fmt.Sprintf("RSA %d", k.N.BitLen()))
		}
		saw("serial", fmt.Sprint(len(l.SerialNumber.Bytes())))
		saw("subject", fmt.Sprint(len(l.Subject.Organization), len(l.Subject.Country)))
		saw("names", strings.Join(l.DNSNames, " "))
		saw("term", l.NotAfter.Sub(l.NotBefore).String())
		if len(l.SubjectKeyId) != 20 {
			t.Errorf("subject key ID %x", l.SubjectKeyId)
		}
		roots := x509.NewCertPool()
		roots.AddCert(l)
		if _, err := l.Verify(x509.VerifyOptions{DNSName: l.Subject.CommonName, Roots: roots}); err != nil {
			t.Errorf("%s: %v", l.Subject.CommonName, err)
		}
	}
	want := map[string]int{"key": 3, "serial": 3, "subject": 3, "term": 3}
	for what, n := range want {
		if len(seen[what]) < n {
			t.Errorf("40 certificates show %d forms of %s, want %d or more: %v", len(seen[what]), what, n, seen[what])
		}
	}
	forms := map[string]bool{}
	for names := range seen["names"] {
		forms[fmt.Sprint(strings.Count(names, " "), strings.HasPrefix(names, "*."))] = true
	}
	if len(forms) != 3 {
		t.Errorf("names in %d forms, want 3: %v", len(forms), seen["names"])
	}
	for k := range seen["key"] {
		if k != "P-256" && k != "P-384" && k != "RSA 2048" {
			t.Errorf("key %s", k)
		}
	}
}

func TestLoadRefusesMissingFiles(t *testing.T) {
	if _, err := Load("/nonexistent/cert.pem", "/nonexistent/key.pem"); err == nil {
		t.Fatal("loaded missing files")
	}
}
