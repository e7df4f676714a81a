package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
)

// TLSClient runs the client side of a TLS handshake for the wss dialer.
//
// What a censor can see of a wss tunnel before any encrypted byte is the
// ClientHello, and ClientHellos are fingerprinted (JA3, JA4): cipher suites,
// extensions and their order, supported groups, ALPN. Today the hello is
// crypto/tls's own (stdTLS below), with the URL's host (or sni=) as SNI and
// ALPN http/1.1 only, as a browser offers for a WebSocket. Its fingerprint
// is Go's, not a browser's: a censor that blocks Go's hello, or allows
// only browsers' hellos, blocks it. This interface is where a library that
// imitates a browser's hello (uTLS, say, which the module proxy here does
// not serve) replaces crypto/tls without touching the dialer: it takes the
// same tls.Config (ServerName, NextProtos, MinVersion; the certificate is
// checked after the handshake, see certValid) and must honour ServerName and
// NextProtos. No single fingerprint is safe everywhere (a Chrome imitation
// gets caught too in places), which is why it stays swappable.
type TLSClient interface {
	// Handshake runs TLS as a client over conn with config and returns the
	// connection that reads and writes through TLS; it owns conn from then
	// on, and closes it when the handshake fails. ctx bounds the
	// handshake only.
	Handshake(ctx context.Context, conn net.Conn, config *tls.Config) (TLSConn, error)
}

// TLSConn is a client's TLS connection after its handshake: what the dialer
// needs of it, in terms that any TLS library can provide (uTLS, for one,
// has a ConnectionState type of its own, not crypto/tls's).
type TLSConn interface {
	net.Conn
	// NetConn is the connection under TLS.
	NetConn() net.Conn
	// PeerCertificates are the server's, leaf first.
	PeerCertificates() []*x509.Certificate
	// ExportKeyingMaterial is TLS's exporter (RFC 8446 §7.5), which the
	// hellos bind to when the certificate is not a valid one (hello.go).
	ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error)
}

// stdTLS is the TLSClient of crypto/tls, the default.
type stdTLS struct{}

func (stdTLS) Handshake(ctx context.Context, conn net.Conn, config *tls.Config) (TLSConn, error) {
	tc := tls.Client(conn, config)
	if err := tc.HandshakeContext(ctx); err != nil {
		tc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return stdTLSConn{tc}, nil
}

type stdTLSConn struct{ *tls.Conn }

func (c stdTLSConn) PeerCertificates() []*x509.Certificate {
	return c.ConnectionState().PeerCertificates
}

func (c stdTLSConn) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	cs := c.ConnectionState()
	return cs.ExportKeyingMaterial(label, context, length)
}
