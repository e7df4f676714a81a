package tunnel

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
)

// Before the first stream, the edge and the origin each prove that they know
// the secret, in one fixed-size message each way:
//
//	+---------+-------+--------------------------------------------+
//	| version | flags | proof = HMAC-SHA256(key, role|flags|binding) |
//	| 1 byte  | 1     | 32                                         |
//	+---------+-------+--------------------------------------------+
//
// role is "ferry edge hello" from the edge and "ferry origin hello" from the
// origin. With FlagBound, binding is the TLS exporter of this very connection
// (RFC 5705, label ExporterLabel, 32 bytes): a man in the middle holds two TLS
// sessions with two exporters, so neither side's proof checks out on the
// other. Without it, binding is the upgrade request's token: the WebSocket
// went through a CDN that ends TLS before the origin, and the token, checked
// by the origin already, is what counts. QUIC hellos are always bound.
//
// The edge binds when it has no other assurance of whom it talks to: over
// QUIC, and over wss:// when the origin's certificate is not valid for the
// host (an origin's own self-signed one). A certificate that is valid
// already rules a man in the middle out. The origin's flags also carry
// FlagClientAddress, asking for clients' addresses in stream headers.

const (
	helloVersion = 1
	helloLen     = 2 + sha256.Size

	// FlagBound marks a hello bound to the TLS exporter.
	FlagBound = 1 << 0
	// FlagClientAddress, from the origin, asks for clients' addresses.
	FlagClientAddress = 1 << 1

	// ExporterLabel is the TLS exporter label of hellos.
	ExporterLabel = "EXPORTER-ferry-tunnel-v1"
)

// ErrBadHello is returned when the peer's hello does not prove the secret.
var ErrBadHello = errors.New("tunnel peer did not prove the secret")

func helloKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ferry tunnel hello v1"))
	return m.Sum(nil)
}

func helloMsg(key []byte, role string, flags byte, binding []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(role))
	m.Write([]byte{flags})
	m.Write(binding)
	return m.Sum([]byte{helloVersion, flags})
}

func readHello(r io.Reader) (flags byte, proof []byte, err error) {
	var b [helloLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, nil, fmt.Errorf("read hello: %w", err)
	}
	if b[0] != helloVersion {
		return 0, nil, fmt.Errorf("%w: hello version %d", ErrBadHello, b[0])
	}
	return b[1], b[2:], nil
}

// exporter returns the TLS exporter of a connection, or nil without TLS.
func exporter(cs *tls.ConnectionState) ([]byte, error) {
	if cs == nil {
		return nil, nil
	}
	ekm, err := cs.ExportKeyingMaterial(ExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("TLS exporter: %w", err)
	}
	return ekm, nil
}

// helloEdge runs the edge's side: it sends its hello, bound to ekm when ekm
// is set and to token otherwise, and checks the origin's. It returns the
// origin's flags.
func helloEdge(rw io.ReadWriter, key, ekm, token []byte) (byte, error) {
	var flags byte
	binding := token
	if ekm != nil {
		flags, binding = FlagBound, ekm
	}
	if _, err := rw.Write(helloMsg(key, "ferry edge hello", flags, binding)); err != nil {
		return 0, fmt.Errorf("send hello: %w", err)
	}
	oflags, proof, err := readHello(rw)
	if err != nil {
		return 0, err
	}
	if oflags&FlagBound != flags&FlagBound {
		return 0, fmt.Errorf("%w: binding differs", ErrBadHello)
	}
	want := helloMsg(key, "ferry origin hello", oflags, binding)
	if !hmac.Equal(want[2:], proof) {
		return 0, fmt.Errorf("%w: origin's proof is wrong (a man in the middle, or another secret)", ErrBadHello)
	}
	return oflags, nil
}

// helloOrigin runs the origin's side: it checks the edge's hello against
// ekm (nil when TLS did not end here) or token (nil over QUIC), and answers
// with its own, carrying flags.
func helloOrigin(rw io.ReadWriter, key, ekm, token []byte, flags byte) error {
	eflags, proof, err := readHello(rw)
	if err != nil {
		return err
	}
	binding := token
	if eflags&FlagBound != 0 {
		binding = ekm
	}
	if binding == nil {
		return fmt.Errorf("%w: nothing to bind to", ErrBadHello)
	}
	want := helloMsg(key, "ferry edge hello", eflags, binding)
	if !hmac.Equal(want[2:], proof) {
		return fmt.Errorf("%w: edge's proof is wrong", ErrBadHello)
	}
	flags = flags&^FlagBound | eflags&FlagBound
	if _, err := rw.Write(helloMsg(key, "ferry origin hello", flags, binding)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	return nil
}

// certValid reports whether a server's certificate chain is valid for name
// against the system's roots.
func certValid(cs *tls.ConnectionState, name string) bool {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return false
	}
	opts := x509.VerifyOptions{DNSName: name, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err == nil
}
