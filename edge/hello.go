package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"slices"
)

// A TLS client of the edge is one of three: a WhatsApp media client whose
// ClientHello names an allowed media server, whose TLS is passed through
// untouched to that server; a chat client or a visitor, whose TLS the edge
// terminates with its own certificate; or a client that sent no
// ClientHello at all. crypto/tls reads the ClientHello (no TLS parser of
// ferry's own): its GetConfigForClient hook sees the server name before the
// edge has written a byte, and decides. A hello passed through is replayed
// from what the handshake read.

// maxHelloBytes bounds what a handshake records for a pass-through: a
// ClientHello with post-quantum key shares is about 2 KB, and one TLS
// record holds 16 KiB. A larger hello is terminated instead.
const maxHelloBytes = 16<<10 + 5

var errPassThrough = errors.New("ClientHello passed through")

// helloConn is a client's connection during a TLS handshake that may turn
// into a pass-through: it records what the handshake reads until the
// ClientHello has been seen, and holds what crypto/tls writes meanwhile (an
// alert for a first record that is no TLS), so that a client passed through
// or handed to the web site gets nothing from this first handshake: the
// site's own answer, or the media server's, is all it sees.
type helloConn struct {
	net.Conn
	client     netip.AddrPort
	rec        []byte
	recording  bool
	held       []byte
	pass       bool
	serverName string
}

func (c *helloConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.recording {
		if len(c.rec)+n > maxHelloBytes {
			c.recording, c.rec = false, nil
		} else {
			c.rec = append(c.rec, p[:n]...)
		}
	}
	return n, err
}

// NetConn lets the relay's reset reach the TCP connection under TLS.
func (c *helloConn) NetConn() net.Conn { return c.Conn }

func (c *helloConn) Write(p []byte) (int, error) {
	switch {
	case c.pass:
		return 0, errPassThrough
	case c.recording:
		// Before the hook: an alert at most, a few bytes.
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// tlsSide holds a listener's TLS configurations: the one its handshakes
// start with, whose hook decides, and those it terminates with, one per
// application protocol answer, made once rather than per client.
type tlsSide struct {
	srv   *Server
	media bool // pass allowed media names through
	hello *tls.Config
	// terminate with no ALPN, with http/1.1 (a browser's or scanner's
	// hello offers it, and a web server picks it), and with acme-tls/1
	// for the CA's TLS-ALPN-01 challenge.
	plain, http11, acme *tls.Config
}

func newTLSSide(srv *Server, media bool) *tlsSide {
	t := &tlsSide{srv: srv, media: media}
	base := srv.TLS
	t.plain = base.Clone()
	t.plain.NextProtos = nil
	t.http11 = base.Clone()
	t.http11.NextProtos = []string{"http/1.1"}
	t.acme = base.Clone()
	t.acme.NextProtos = []string{"acme-tls/1"}
	t.hello = &tls.Config{GetConfigForClient: t.configFor}
	return t
}

// configFor is the handshake's hook: it runs once the ClientHello is read,
// before the edge writes a byte.
func (t *tlsSide) configFor(chi *tls.ClientHelloInfo) (*tls.Config, error) {
	hc, ok := chi.Conn.(*helloConn)
	if ok {
		hc.recording, hc.held = false, nil
		if t.media && hc.rec != nil && t.srv.passMedia(chi.ServerName, hc.client) {
			hc.pass, hc.serverName = true, chi.ServerName
			return nil, errPassThrough
		}
		hc.rec = nil
	}
	switch {
	case slices.Contains(chi.SupportedProtos, "acme-tls/1"):
		return t.acme, nil
	case slices.Contains(chi.SupportedProtos, "http/1.1"):
		return t.http11, nil
	}
	return t.plain, nil
}

// hello is what a TLS client's handshake came to: one of passed through,
// not TLS, failed, or terminated (tls set).
type hello struct {
	tls        *tls.Conn
	pass       bool   // an allowed media name: replay rec to the media route
	serverName string // the name, when passed through
	notTLS     bool   // the first bytes were no TLS record: rec holds them
	rec        []byte
	err        error
}

// handshake runs the TLS handshake of c, a client at client, until ctx
// ends.
func (t *tlsSide) handshake(ctx context.Context, c net.Conn, client netip.AddrPort) hello {
	hc := &helloConn{Conn: c, client: client, recording: true}
	tc := tls.Server(hc, t.hello)
	err := tc.HandshakeContext(ctx)
	var rhe tls.RecordHeaderError
	switch {
	case hc.pass:
		return hello{pass: true, serverName: hc.serverName, rec: hc.rec}
	case errors.As(err, &rhe) && hc.rec != nil:
		return hello{notTLS: true, rec: hc.rec, err: err}
	case err != nil:
		// A ClientHello that crypto/tls refused: its alert goes out,
		// as net/http's TLS server's would.
		if len(hc.held) > 0 {
			hc.Conn.Write(hc.held)
		}
		return hello{err: err}
	}
	return hello{tls: tc}
}
