package tunneltest

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"ferry/tunnel"
)

// Options set up a session pair. The zero value holds the defaults.
type Options struct {
	// ClientAddress is what both sessions' ClientAddress report: whether
	// the origin asked for clients' addresses.
	ClientAddress bool
	// RTT is what both sessions' RTT report; zero, as before a first ping.
	RTT time.Duration
	// Buffer is how many bytes each direction of a stream holds unread;
	// zero means DefaultBuffer.
	Buffer int
}

// Backlog is how many streams may wait for AcceptStream; OpenStream waits
// beyond it, as a transport's does at its stream limit.
const Backlog = 4096

// ErrClosed is what a closed session's calls fail with; it is
// net.ErrClosed.
var ErrClosed = fmt.Errorf("tunneltest: session closed: %w", net.ErrClosed)

// link is what the two sessions of a pair share: the end of both, and the
// streams to reset then.
type link struct {
	opts Options
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	streams map[*conn][2]*Stream // live: not yet closed by both ends
}

// Session is one end of an in-memory session pair; it implements
// tunnel.Session. A stream opened on one end is accepted on the other, and
// Close of either end ends both and resets their live streams, as the end
// of a transport connection does.
type Session struct {
	l        *link
	peer     *Session
	accept   chan *Stream // streams the peer opened
	draining chan struct{}
	drain    sync.Once // closes peer.draining

	full, silent  atomic.Bool
	opens, probes atomic.Int64
	unreachable   atomic.Uint64 // what the peer told, at once
}

var _ tunnel.Session = (*Session)(nil)

// Pair returns two joined sessions: by convention the edge's, which opens
// streams, and the origin's, which accepts them.
func Pair(o Options) (edge, origin *Session) {
	o.Buffer = cmp.Or(o.Buffer, DefaultBuffer)
	l := &link{opts: o, done: make(chan struct{}), streams: map[*conn][2]*Stream{}}
	edge = &Session{l: l, accept: make(chan *Stream, Backlog), draining: make(chan struct{})}
	origin = &Session{l: l, accept: make(chan *Stream, Backlog), draining: make(chan struct{})}
	edge.peer, origin.peer = origin, edge
	return edge, origin
}

// SetFull puts the session at its stream limit, or takes it off: while
// full, OpenStream waits until its ctx ends, as QUIC's OpenStreamSync does.
func (s *Session) SetFull(full bool) { s.full.Store(full) }

// SetSilent makes the session's Probe go unanswered, or answered again: a
// session whose peer stopped carrying anything.
func (s *Session) SetSilent(silent bool) { s.silent.Store(silent) }

// Opens is how many times OpenStream was called, whatever it returned.
func (s *Session) Opens() int64 { return s.opens.Load() }

// Probes is how many times Probe was called.
func (s *Session) Probes() int64 { return s.probes.Load() }

// Streams is how many streams of the pair are live: not yet closed by
// both ends, nor reset by the session's end.
func (s *Session) Streams() int {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	return len(s.l.streams)
}

// OpenStream opens a stream that the peer's AcceptStream returns. The
// stream exists at once, as a yamux stream does before its first frame.
func (s *Session) OpenStream(ctx context.Context) (tunnel.Stream, error) {
	s.opens.Add(1)
	if s.full.Load() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.l.done:
			return nil, ErrClosed
		}
	}
	var c *conn
	a, b := pipe(s.l.opts.Buffer, func() {
		s.l.mu.Lock()
		delete(s.l.streams, c)
		s.l.mu.Unlock()
	})
	c = a.c
	s.l.mu.Lock()
	select {
	case <-s.l.done:
		s.l.mu.Unlock()
		return nil, ErrClosed
	default:
	}
	s.l.streams[c] = [2]*Stream{a, b}
	s.l.mu.Unlock()
	select {
	case s.peer.accept <- b:
		return a, nil
	case <-ctx.Done():
		a.reset()
		s.l.mu.Lock()
		delete(s.l.streams, c)
		s.l.mu.Unlock()
		return nil, ctx.Err()
	case <-s.l.done:
		return nil, ErrClosed
	}
}

// AcceptStream returns the next stream the peer opened.
func (s *Session) AcceptStream(ctx context.Context) (tunnel.Stream, error) {
	select {
	case <-s.l.done:
		return nil, ErrClosed
	default:
	}
	select {
	case st := <-s.accept:
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.l.done:
		return nil, ErrClosed
	}
}

func (s *Session) Done() <-chan struct{} { return s.l.done }

// Close ends both sessions of the pair and resets their live streams.
func (s *Session) Close() error {
	s.l.once.Do(func() {
		s.l.mu.Lock()
		close(s.l.done) // under mu: no stream is added after
		streams := s.l.streams
		s.l.streams = nil
		s.l.mu.Unlock()
		for _, ends := range streams {
			ends[0].reset()
		}
	})
	return nil
}

// Drain tells the peer that this end drains: the peer's PeerDraining
// closes.
func (s *Session) Drain() error {
	select {
	case <-s.l.done:
		return ErrClosed
	default:
	}
	s.drain.Do(func() { close(s.peer.draining) })
	return nil
}

func (s *Session) PeerDraining() <-chan struct{} { return s.draining }

func (s *Session) RTT() time.Duration { return s.l.opts.RTT }

// Probe answers at once, unless the session is silent (see SetSilent):
// then it waits until ctx ends.
func (s *Session) Probe(ctx context.Context) error {
	s.probes.Add(1)
	if s.silent.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.l.done:
			return ErrClosed
		}
	}
	select {
	case <-s.l.done:
		return ErrClosed
	default:
		return nil
	}
}

func (s *Session) ClientAddress() bool { return s.l.opts.ClientAddress }

// TellUnreachable tells the peer at once, as the control stream does after
// a round trip.
func (s *Session) TellUnreachable(r tunnel.Routes) { s.peer.unreachable.Store(uint64(r)) }

func (s *Session) PeerUnreachable() tunnel.Routes { return tunnel.Routes(s.unreachable.Load()) }

// Peer is the other end of the pair.
func (s *Session) Peer() *Session { return s.peer }
