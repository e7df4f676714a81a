// Package cert provides the TLS certificates of ferry's listeners: the
// operator's own, or a self-signed one made at start.
package cert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
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

// terms are how long a self-signed certificate is valid, among the terms
// of most certificates on the web: Let's Encrypt's 90 days (its NotAfter
// is NotBefore + 90 days - 1 s, both ends included), as it issues most of
// them; 90 days even, as other free CAs write it; and the 180 and 199 days
// of paid CAs under the 200-day ceiling the CA/Browser Forum set in March
// 2026. 397 days, the old ceiling, stopped being a term any of them
// issues then, so it would stand out. A certificate is made once per start
// and never renewed, so an edge that runs longer without a restart serves
// it expired (WhatsApp does not mind).
var terms = []time.Duration{90*24*time.Hour - time.Second, 90 * 24 * time.Hour, 180 * 24 * time.Hour, 199 * 24 * time.Hour}

// KeyKind is the kind of a self-signed certificate's key.
type KeyKind int

const (
	ECDSAP256 KeyKind = iota
	ECDSAP384
	RSA2048
)

// CommonKeys are the kinds of key most certificates on the web have, the
// first two about as often as each other: a certificate with any of them
// blends in.
var CommonKeys = []KeyKind{ECDSAP256, RSA2048, ECDSAP256, RSA2048, ECDSAP384}

// SelfSigned makes a certificate with an ECDSA P-256 key for a random name
// (the default of FERRY_EDGE_TLS_CERT). Scanners find proxies by searching
// certificate fields, and the official proxy was once found by a fixed
// name; a new random name at every start gives them nothing to search for.
// WhatsApp does not validate the certificate.
//
// Nothing in it is the same across edges or starts, and its form varies
// as CAs' certificates do: a fresh key; a random serial of 16, 18 or 20
// bytes; a random name, in the subject alone or with an organization (and
// a country), and in the subject alternative names alone, with its www.
// name or under a wildcard; server authentication alone or with client
// authentication; and a validity that starts when it is made, a random 0
// to 10 minutes back (as CAs backdate for clients whose clocks run slow),
// to the second, as CAs write it, and lasts one of terms. It is valid for
// its name.
func SelfSigned() (tls.Certificate, error) { return SelfSignedWith(ECDSAP256) }

// SelfSignedWith is SelfSigned with a key of a kind drawn from kinds: the
// listeners whose documented default names no key (tunnels') take
// CommonKeys, so that two of them do not even share a kind of key.
func SelfSignedWith(kinds ...KeyKind) (tls.Certificate, error) {
	kind := ECDSAP256
	if len(kinds) > 0 {
		kind = kinds[mrand.IntN(len(kinds))]
	}
	key, err := newKey(kind)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate serial: %w", err)
	}
	pub := key.Public()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return tls.Certificate{}, err
	}
	name := randomName()
	notBefore := time.Now().Add(-randomSkew()).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               randomSubject(name),
		DNSNames:              randomSANs(name),
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(terms[mrand.IntN(len(terms))]),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          subjectKeyID(spki),
	}
	if kind == RSA2048 {
		// RSA key exchange of TLS 1.2, as CAs' RSA certificates allow.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if mrand.IntN(2) == 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func newKey(kind KeyKind) (crypto.Signer, error) {
	switch kind {
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// randomSerial returns a positive serial of 16, 18 or 20 bytes, the
// lengths CAs use (20 is the most RFC 5280 allows).
func randomSerial() (*big.Int, error) {
	b := make([]byte, []int{16, 18, 20}[mrand.IntN(3)])
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	// A first byte of 1 to 0x7f: positive, and no shorter than b.
	b[0] = 1 + b[0]%0x7f
	return new(big.Int).SetBytes(b), nil
}

// subjectKeyID is RFC 5280's first method: the SHA-1 of the public key's
// bits, as CAs' certificates carry it.
func subjectKeyID(spki []byte) []byte {
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:]
}

// randomSubject is a subject of name alone (domain validated, as most
// certificates are), or with an organization, and maybe a country (as
// organization validated ones are).
func randomSubject(name string) pkix.Name {
	n := pkix.Name{CommonName: name}
	switch mrand.IntN(4) {
	case 0:
		n.Organization = []string{randomOrganization(name)}
	case 1:
		n.Organization = []string{randomOrganization(name)}
		n.Country = []string{[]string{"US", "DE", "GB", "NL", "FR", "CA", "SE"}[mrand.IntN(7)]}
	}
	return n
}

// randomOrganization names an organization after the first label of name.
func randomOrganization(name string) string {
	label, _, _ := strings.Cut(name, ".")
	suffix := []string{"", " Inc.", " LLC", " Ltd", " GmbH", " B.V."}[mrand.IntN(6)]
	return strings.ToUpper(label[:1]) + label[1:] + suffix
}

// randomSANs lists name as certificates do: alone, with its www. name, or
// with a wildcard under it.
func randomSANs(name string) []string {
	switch mrand.IntN(3) {
	case 0:
		return []string{name, "www." + name}
	case 1:
		return []string{"*." + name, name}
	}
	return []string{name}
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
