// Package cert provides the TLS certificates of ferry's listeners: the
// operator's own, or a self-signed one made at start.
package cert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"time"
)

// Load returns the operator's certificate, or a fresh self-signed one when
// both paths are empty.
func Load(certFile, keyFile string) (tls.Certificate, error) {
	if certFile == "" && keyFile == "" {
		return SelfSigned()
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

// term is how long a self-signed certificate is valid: Let's Encrypt's 90
// days (its NotAfter is NotBefore + 90 days - 1 s, both ends included),
// the term of most certificates on the web, as it issues most of them.
// 397 days, the old ceiling of public CAs, stopped being a term any of
// them issues when the CA/Browser Forum cut it to 200 days in March 2026,
// so it would now stand out. A certificate is made once per start and
// never renewed, so an edge that runs longer than 90 days without a
// restart serves it expired (WhatsApp does not mind).
const term = 90*24*time.Hour - time.Second

// SelfSigned makes an ECDSA P-256 certificate for a random name. Scanners
// find proxies by searching certificate fields, and the official proxy was
// once found by a fixed name; a new random name at every start gives them
// nothing to search for. WhatsApp does not validate the certificate.
//
// Nothing in it is the same across edges or starts: a fresh key, a random
// serial below 2^127, a random name, and a validity that starts when it is
// made, a random 0 to 10 minutes back (as CAs backdate for clients whose
// clocks run slow), to the second, as CAs write it, and lasts term.
func SelfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate serial: %w", err)
	}
	name := randomName()
	notBefore := time.Now().Add(-randomSkew()).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(term),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// randomSkew returns a random duration from 0 to 10 minutes, to the second.
func randomSkew() time.Duration {
	return time.Duration(mrand.IntN(10*60+1)) * time.Second
}

// randomName returns a plausible host name: 6 to 12 letters and a common
// top-level domain.
func randomName() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	tlds := []string{"com", "net", "org", "io", "dev", "app"}
	var b [13]byte
	rand.Read(b[:])
	n := 6 + int(b[0])%7
	name := make([]byte, n)
	for i := range name {
		name[i] = letters[int(b[i+1])%len(letters)]
	}
	return string(name) + "." + tlds[int(b[12])%len(tlds)]
}
