// Package tunnel is the link between an edge and an origin: a Session that
// carries many Streams, one per client connection, over one transport
// connection.
//
// Protocol flow over WebSocket:
//
//	edge                                          origin
//	 |-- GET PATH, Upgrade: websocket ------------->|  Cookie: sid=TOKEN (token.go), sent as a browser's (upgrade.go)
//	 |<-- 101 Switching Protocols ------------------|  any other request gets the decoy page
//	 |== yamux session, one frame per binary message ==
//	 |-- stream: Header, then client bytes -------->|  origin parses the Header (header.go),
//	 |<-- stream: Reply byte, then target bytes ----|  dials the route, replies, relays
//
// The edge writes the header and the client's bytes without waiting for the
// reply, so a stream costs no round trip; the reply tells it whether the
// origin could reach the route's target.
//
// In reverse mode the origin dials and the edge listens, shows the decoy and
// checks the token; the session is the same, with streams still opened by
// the edge. Every session has a control stream (control.go) for pings and
// drain notices, both ways.
package tunnel

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Stream is one relayed connection inside a Session. Its contract is the
// same over every transport (yamux over WebSocket, QUIC):
//   - CloseWrite ends the sending direction with a FIN: the peer reads the
//     bytes written before it, then io.EOF, and may go on writing.
//   - Close after both directions have ended (CloseWrite called and io.EOF
//     read) is clean: nothing is lost either way.
//   - Close before that is an abort: the stream is reset both ways (over
//     yamux an RST frame with an error code, over QUIC RESET_STREAM and
//     STOP_SENDING), and the peer's Read and Write fail at once with an
//     error that is ErrStreamReset, even with bytes still unread. A reset
//     after this end's FIN leaves the bytes before the FIN readable.
//
// The relay turns a reset it reads into a TCP reset (linger 0) towards its
// client or target, and a client's or target's reset into a stream reset,
// so that an abort crosses the tunnel as an abort, never as a clean end.
// The streams of a session that ends are reset too.
type Stream interface {
	net.Conn
	// CloseWrite ends the sending direction; reading goes on until the peer
	// ends its own.
	CloseWrite() error
	// PeerEnded tells, without reading and without blocking, how the peer
	// has ended its sending direction: an ErrStreamReset error once the
	// stream was reset (by either end or its session's end), io.EOF once
	// the peer's FIN was received with nothing left to read, and nil while
	// it sends on or this cannot tell. It is for a relay blocked writing
	// this stream's bytes elsewhere, which would otherwise learn of an
	// abort only at its next Read; it must not run beside a Read.
	PeerEnded() error
}

// ErrStreamReset is what a reset stream's Read and Write fail with, whoever
// reset it (this end, its peer, or the end of its session): errors.Is
// reports it, and the transport's own error is wrapped.
var ErrStreamReset = errors.New("stream reset")

// ErrPeerAborted is, besides ErrStreamReset, what they fail with when the
// peer's Close reset the stream: not the session's end, nor the transport
// refusing a new stream. A reset discards the bytes not yet read, so an
// edge that sees it before the origin's reply knows that the origin had
// taken the stream, and its target maybe the first bytes.
var ErrPeerAborted = errors.New("stream aborted by its peer")

// streamReset wraps a transport's reset error as ErrStreamReset, and as
// ErrPeerAborted when the peer's Close sent it.
type streamReset struct {
	err     error
	aborted bool
}

func (e *streamReset) Error() string { return e.err.Error() }
func (e *streamReset) Unwrap() error { return e.err }
func (e *streamReset) Is(target error) bool {
	return target == ErrStreamReset || target == ErrPeerAborted && e.aborted
}

// Session is a multiplexed link between one edge and one origin, whichever
// of them dialled. The edge opens streams; the origin accepts them.
type Session interface {
	OpenStream(ctx context.Context) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, error)
	// Done is closed when the session has ended, by Close or by failure.
	Done() <-chan struct{}
	Close() error
	// Drain tells the peer that this end drains: from an origin, open no
	// new streams; from an edge, expect none. Live streams go on.
	Drain() error
	// PeerDraining is closed once the peer has said that it drains.
	PeerDraining() <-chan struct{}
	// RTT is the round trip of the latest ping, zero before the first.
	RTT() time.Duration
	// Probe pings the peer and waits until it answers or ctx ends: it
	// tells a session that stopped carrying anything from a peer that is
	// only slow to answer a stream.
	Probe(ctx context.Context) error
	// ClientAddress reports whether the origin asked for clients' addresses
	// in stream headers. It asks only when it sends them on in a PROXY
	// header; otherwise they never leave the edge.
	ClientAddress() bool
	// TellUnreachable tells the peer, an edge, which routes this end, an
	// origin, cannot reach now (none: zero); it returns at once.
	TellUnreachable(Routes)
	// PeerUnreachable is what the peer, an origin, told last: the routes
	// it cannot reach.
	PeerUnreachable() Routes
}

// End describes this end of the sessions a dialer or listener makes: the
// transport's direction (who dials) and the session's roles (who opens
// streams) are independent, so that an origin may dial its edges.
type End struct {
	Origin bool // this end accepts streams; otherwise it opens them
	// ClientAddress, on an origin, asks edges for clients' addresses.
	ClientAddress bool
	Secret        string
	Log           *slog.Logger
	// LogClientIPs, on a listener, keeps the addresses of those whose
	// handshakes it refuses (strangers' mostly) in its debug lines; by
	// default they are taken out.
	LogClientIPs bool
	// KeepAlive and PingTimeout override the defaults of the same names
	// when set; tests shorten them.
	KeepAlive, PingTimeout time.Duration
}

func (e End) flags() byte {
	var f byte
	if e.Origin {
		f |= FlagOrigin
		if e.ClientAddress {
			f |= FlagClientAddress
		}
	}
	return f
}

// Dialer makes sessions to one origin.
type Dialer interface {
	Dial(ctx context.Context) (Session, error)
}

// Listener accepts sessions from edges.
type Listener interface {
	Accept(ctx context.Context) (Session, error)
	// Close stops accepting at once; sessions already accepted live on, and
	// their owner closes them. It never waits for them: a socket they share
	// (QUIC's) is closed by the Close of the last of them.
	Close() error
	Addr() net.Addr
}

// queue hands the sessions a listener's handshakes produce to Accept.
type queue struct {
	sessions chan Session
	ctx      context.Context // ends at the listener's Close, and with it handshakes in flight
	cancel   context.CancelFunc
}

func newQueue() queue {
	ctx, cancel := context.WithCancel(context.Background())
	return queue{sessions: make(chan Session), ctx: ctx, cancel: cancel}
}

func (q *queue) Accept(ctx context.Context) (Session, error) {
	select {
	case s := <-q.sessions:
		return s, nil
	case <-q.ctx.Done():
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// deliver waits for Accept to take s, or closes s if the listener closes.
func (q *queue) deliver(s Session) {
	select {
	case q.sessions <- s:
	case <-q.ctx.Done():
		s.Close()
	}
}
