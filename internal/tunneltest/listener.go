package tunneltest

import (
	"context"
	"net"
	"sync"

	"ferry/tunnel"
)

// Listener is a tunnel.Listener whose sessions are Pairs that Connect
// makes: an origin's listener with edges that need no network.
type Listener struct {
	opts     Options
	sessions chan *Session
	closed   chan struct{}
	once     sync.Once
}

var _ tunnel.Listener = (*Listener)(nil)

// NewListener returns a Listener whose pairs are made with o.
func NewListener(o Options) *Listener {
	return &Listener{opts: o, sessions: make(chan *Session), closed: make(chan struct{})}
}

// Connect makes a session pair, waits for Accept to take the origin's
// end, and returns the edge's. It fails with ErrClosed once the listener
// is closed.
func (l *Listener) Connect(ctx context.Context) (*Session, error) {
	edge, origin := Pair(l.opts)
	select {
	case l.sessions <- origin:
		return edge, nil
	case <-l.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *Listener) Accept(ctx context.Context) (tunnel.Session, error) {
	select {
	case s := <-l.sessions:
		return s, nil
	case <-l.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops accepting; the sessions accepted live on, as
// tunnel.Listener's Close says.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *Listener) Addr() net.Addr { return Addr("tunneltest-listener") }
