// Package tunnel is the link between an edge and an origin: a Session that
// carries many Streams, one per client connection, over one transport
// connection.
//
// Protocol flow over WebSocket:
//
//	edge                                          origin
//	 |-- GET PATH, Upgrade: websocket ------------->|  Authorization: Bearer TOKEN (token.go)
//	 |<-- 101 Switching Protocols ------------------|  any other request gets the decoy page
//	 |== yamux session, one frame per binary message ==
//	 |-- stream: Header, then client bytes -------->|  origin parses the Header (header.go),
//	 |<-- stream: Reply byte, then target bytes ----|  dials the route, replies, relays
//
// The edge writes the header and the client's bytes without waiting for the
// reply, so a stream costs no round trip; the reply tells it whether the
// origin could reach the route's target.
package tunnel

import (
	"context"
	"net"
)

// Stream is one relayed connection inside a Session.
type Stream interface {
	net.Conn
	// CloseWrite ends the sending direction; reading goes on until the peer
	// ends its own.
	CloseWrite() error
}

// Session is a multiplexed link between one edge and one origin. The edge
// opens streams; the origin accepts them.
type Session interface {
	OpenStream(ctx context.Context) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, error)
	// Done is closed when the session has ended, by Close or by failure.
	Done() <-chan struct{}
	Close() error
	// ClientAddress reports whether the origin asked for clients' addresses
	// in stream headers. It asks only when it sends them on in a PROXY
	// header; otherwise they never leave the edge.
	ClientAddress() bool
}
