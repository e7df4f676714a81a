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

// SelfSigned makes an ECDSA P-256 certificate for a random name. Scanners
// find proxies by searching certificate fields, and the official proxy was
// once found by a fixed name; a new random name at every start gives them
// nothing to search for. WhatsApp does not validate the certificate.
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
	// Backdate by a random part of a month, as a certificate issued
	// earlier would be.
	notBefore := time.Now().Add(-time.Duration(1+serial.Int64()%(30*24)) * time.Hour).Truncate(time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(1, 0, 0),
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
