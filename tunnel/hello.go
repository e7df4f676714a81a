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
// origin, and FlagOrigin says which one sent it: a hello reflected back, or
// an origin that reached another origin, is refused. With FlagBound, binding
// is the TLS exporter of this very connection (RFC 5705, label
// ExporterLabel, 32 bytes): a man in the middle holds two TLS sessions with
// two exporters, so neither side's proof checks out on the other. Without
// it, binding is the upgrade request's token: the WebSocket went through a
// CDN that ends TLS before the listener, and the token, checked by the
// listener already, is what counts. QUIC hellos are always bound.
//
// The dialer speaks first, so that a listener says nothing to a stranger,
// and chooses: it binds when it has no other assurance of whom it talks to,
// over QUIC and over wss:// when the listener's certificate is not valid for
// the host (such as its own self-signed one); a valid certificate already
// rules a man in the middle out. The origin's flags also carry
// FlagClientAddress, asking for clients' addresses in stream headers.

const (
	helloVersion = 1
	helloLen     = 2 + sha256.Size

	// FlagBound marks a hello bound to the TLS exporter.
	FlagBound = 1 << 0
	// FlagClientAddress, from the origin, asks for clients' addresses.
	FlagClientAddress = 1 << 1
	// FlagOrigin marks the origin's hello.
	FlagOrigin = 1 << 2

	// ExporterLabel is the TLS exporter label of hellos.
	ExporterLabel = "EXPORTER-ferry-tunnel-v1"
)

// ErrBadHello is returned when the peer's hello does not prove the secret.
var ErrBadHello = errors.New("tunnel peer did not prove the secret")

// ErrSameRole is returned when the peer is an edge too, or an origin too.
var ErrSameRole = errors.New("tunnel peer has the same role: an origin's FERRY_ORIGIN_EDGES must name edges' FERRY_EDGE_TUNNEL_LISTEN, and an edge's FERRY_EDGE_ORIGINS origins' FERRY_ORIGIN_LISTEN")

// authFailure reports whether a tunnel handshake failed for its hellos: a
// wrong secret or a peer of the same role, not a timeout or a dropped
// connection, which scanners and networks cause without any secret.
func authFailure(err error) bool {
	return errors.Is(err, ErrBadHello) || errors.Is(err, ErrSameRole)
}

func helloKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ferry tunnel hello v1"))
	return m.Sum(nil)
}

func helloMsg(key []byte, flags byte, binding []byte) []byte {
	role := "ferry edge hello"
	if flags&FlagOrigin != 0 {
		role = "ferry origin hello"
	}
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

// checkHello checks the peer's hello against binding, for this end's flags.
func checkHello(key []byte, flags, pflags byte, proof, binding []byte) error {
	want := helloMsg(key, pflags, binding)
	if !hmac.Equal(want[2:], proof) {
		return fmt.Errorf("%w: its proof is wrong (another secret, or a man in the middle)", ErrBadHello)
	}
	if pflags&FlagOrigin == flags&FlagOrigin {
		return ErrSameRole
	}
	return nil
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

// helloFirst runs the side that speaks first: it sends its hello with
// flags, bound to ekm when ekm is set and to token otherwise, and checks the
// peer's. It returns the peer's flags.
func helloFirst(rw io.ReadWriter, key, ekm, token []byte, flags byte) (byte, error) {
	binding := token
	if ekm != nil {
		flags, binding = flags|FlagBound, ekm
	}
	if _, err := rw.Write(helloMsg(key, flags, binding)); err != nil {
		return 0, fmt.Errorf("send hello: %w", err)
	}
	pflags, proof, err := readHello(rw)
	if err != nil {
		return 0, err
	}
	if pflags&FlagBound != flags&FlagBound {
		return 0, fmt.Errorf("%w: binding differs", ErrBadHello)
	}
	return pflags, checkHello(key, flags, pflags, proof, binding)
}

// helloSecond runs the side that answers: it checks the peer's hello against
// ekm (nil when TLS did not end here) or token (nil over QUIC), and answers
// with its own, carrying flags. It returns the peer's flags.
func helloSecond(rw io.ReadWriter, key, ekm, token []byte, flags byte) (byte, error) {
	pflags, proof, err := readHello(rw)
	if err != nil {
		return 0, err
	}
	binding := token
	if pflags&FlagBound != 0 {
		binding = ekm
	}
	if binding == nil {
		return 0, fmt.Errorf("%w: nothing to bind to", ErrBadHello)
	}
	cerr := checkHello(key, flags, pflags, proof, binding)
	if errors.Is(cerr, ErrBadHello) {
		return 0, cerr // a stranger learns nothing
	}
	// A peer of the same role proved the secret: it gets an answer, so
	// that both sides log why they fail.
	flags = flags&^FlagBound | pflags&FlagBound
	if _, err := rw.Write(helloMsg(key, flags, binding)); err != nil {
		return 0, fmt.Errorf("send hello: %w", err)
	}
	return pflags, cerr
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
