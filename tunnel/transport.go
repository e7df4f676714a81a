package tunnel

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"ferry/cert"
	"ferry/decoy"
)

// This file is the one place where a URL's scheme picks its transport:
// ws and wss are yamux over a WebSocket on TCP (ws.go), quic is QUIC on UDP
// (quic.go), its listener an HTTP/3 server to all but edges (h3.go); dns is
// yamux over TLS over kcp over DNS queries and answers through resolvers
// (dns.go), its listener an authoritative DNS server to all but edges.
// cmd/ferry and the tests both go through NewDialer and Listen.

// NewDialer returns a dialer of u, a URL from ParseURL, for end.
func NewDialer(u URL, end End) (Dialer, error) {
	switch u.Scheme {
	case "ws", "wss":
		return newWSDialer(u, end), nil
	case "quic":
		return newQUICDialer(u, end), nil
	case "dns":
		return newDNSDialer(u, end)
	}
	return nil, fmt.Errorf("tunnel URL %s: scheme %q is not ws, wss, quic or dns", u, u.Scheme)
}

// ListenOptions are what a tunnel listener needs besides its URL. The zero
// value of each field but End is a working default.
type ListenOptions struct {
	End End
	// Certificate is what wss and quic listeners prove themselves with; nil
	// means a self-signed one made by Listen. Dialers accept a self-signed
	// certificate only when the hellos bind to the TLS session (hello.go).
	Certificate *tls.Certificate
	// Decoy answers every request to a ws or wss listener that is not a
	// tunnel upgrade with a valid token, and every HTTP/3 request to a quic
	// listener (h3.go); nil means decoy's built-in page.
	Decoy http.Handler
	// Verifier checks the tokens of ws and wss upgrades; nil means a new one
	// for End.Secret. The listeners of one process share one, so that a
	// token seen by one is refused by all.
	Verifier *Verifier
	// MaxConns caps a listener's connections that are not tunnel sessions
	// (decoy visitors, and tunnels until their token or hello is checked);
	// 0 means DefaultMaxConns. At the cap a new connection replaces the
	// oldest one kept alive between requests (ws, wss; for quic, the
	// oldest such connection), or is closed unanswered (ws, wss).
	MaxConns int
	// MaxIdlePerIP caps, per IPv4 address or IPv6 /64, a ws or wss
	// listener's idle connections (no request yet, or kept alive between
	// requests; see wslimit.go), and a quic listener's connections that
	// are not sessions, the oldest of them closed for a new one; 0 means
	// DefaultMaxIdlePerIP.
	MaxIdlePerIP int
}

// Listen opens the socket of u, a URL from ParseListenURL (TCP for ws and
// wss, UDP for quic and dns), and serves tunnels on it. Errors wrap the socket's
// (errors.Is finds syscall.EADDRINUSE, say) and name u.
func Listen(u URL, o ListenOptions) (Listener, error) {
	switch u.Scheme {
	case "ws", "wss", "quic", "dns":
	default:
		return nil, fmt.Errorf("tunnel URL %s: scheme %q is not ws, wss, quic or dns", u, u.Scheme)
	}
	if o.Decoy == nil {
		o.Decoy = decoy.New(decoy.Options{})
	}
	if o.Verifier == nil {
		o.Verifier = NewVerifier(o.End.Secret)
	}
	if o.Certificate == nil && u.TLS() {
		crt, err := cert.SelfSigned()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		o.Certificate = &crt
	}
	if u.Scheme == "dns" {
		pc, err := net.ListenPacket("udp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		l, err := listenDNS(pc, u, o)
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		return l, nil
	}
	if u.Scheme == "quic" {
		pc, err := net.ListenPacket("udp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		l, err := listenQUIC(pc, o)
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		return l, nil
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return listenWS(ln, u, o), nil
}
