package tunnel

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// A session's control stream is open for the session's whole life: over
// QUIC it is the hellos' own stream, over yamux the first stream, opened by
// the edge right after the hellos. Each end sends fixed-size messages on it:
//
//	+------+------------------------+
//	| type | value (big endian)     |
//	| 1    | 8                      |
//	+------+------------------------+
//
// ping carries the sender's clock and is answered by a pong with the same
// value; drain (value 0) says that the sender drains; unreachable, from an
// origin, carries the Routes it cannot reach (sent when the session starts
// if any, then at each change). Other types are skipped, so that a later
// version may add some: an edge of an older version ignores unreachable.
//
// Each end pings every KeepAlive. The pings are the traffic that keeps a
// proxy with an idle timeout from cutting an idle session, they give the
// RTT, and one unanswered within PingTimeout closes the session as stalled,
// so that its owner replaces it while the others carry on.
const (
	ctlPing  = 1
	ctlPong  = 2
	ctlDrain = 3
	ctlReach = 4 // unreachable
	ctlLen   = 9
)

// KeepAlive is how often each end pings: often enough that a session that
// stops answering is given up about as fast as QUIC gives one up (its idle
// timeout is 6 s), and a 9-byte message every few seconds costs nothing
// next to traffic. CDNs cut WebSockets idle for 100 s, and reverse proxies
// often far sooner (nginx's proxy_read_timeout is 60 s by default; CI
// checks one set to 20 s).
const KeepAlive = 3 * time.Second

// PingTimeout is how long a ping may go unanswered, with nothing else heard
// from the peer either, before the session is closed as stalled. A ping
// waits behind the data queued before it on a slow link under load; the
// peer's frames (its data, the window updates for ours) then still arrive,
// and keep the session. With KeepAlive, a peer that stops just after a
// pong is given up within 9 s, as QUIC gives one up within its 6 s idle
// timeout and a keepalive.
const PingTimeout = 6 * time.Second

// muxer is what a transport provides: streams over one connection.
type muxer interface {
	OpenStream(ctx context.Context) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, error)
	Done() <-chan struct{}
	Close() error
	// Heard is when the peer last sent anything on the connection; zero
	// where the transport watches its peer itself (QUIC's idle timeout).
	Heard() time.Time
}

// session is a Session: a transport's muxer and its control stream.
type session struct {
	muxer
	ctl                    Stream
	clientAddr             bool
	log                    *slog.Logger
	keepAlive, pingTimeout time.Duration
	start                  time.Time // ping values count from here

	wmu          sync.Mutex // one writer at a time on ctl
	rtt          atomic.Int64
	pmu          sync.Mutex
	lastPong     int64         // the value of the latest pong, under pmu
	pong         chan struct{} // closed and replaced at each pong, under pmu
	lastProbe    atomic.Int64  // the value of the latest probe's ping
	drain        chan struct{} // closed by Drain; the pinger tells the peer
	drainOnce    sync.Once
	peerDraining chan struct{}
	peerOnce     sync.Once
	// What this end tells (an origin's routes it cannot reach, sent by the
	// pinger when kicked) and what the peer told.
	unreachable, peerUnreachable atomic.Uint64
	reachKick                    chan struct{} // capacity 1
	wg                           sync.WaitGroup
}

// newSession runs a session set up by the hellos, in which the peer sent
// peerFlags. Client addresses cross it when the origin asks for them: the
// origin knows its own setting, an edge learns it from the origin's hello.
func newSession(m muxer, ctl Stream, end End, peerFlags byte) *session {
	clientAddr := peerFlags&FlagClientAddress != 0
	if end.Origin {
		clientAddr = end.ClientAddress
	}
	s := &session{
		muxer: m, ctl: ctl, clientAddr: clientAddr, log: end.Log,
		keepAlive: cmp.Or(end.KeepAlive, KeepAlive), pingTimeout: cmp.Or(end.PingTimeout, PingTimeout), start: time.Now(),
		lastPong: -1, pong: make(chan struct{}), drain: make(chan struct{}), peerDraining: make(chan struct{}),
		reachKick: make(chan struct{}, 1),
	}
	s.wg.Add(2)
	go s.read()
	go s.ping()
	return s
}

func (s *session) ClientAddress() bool           { return s.clientAddr }
func (s *session) PeerDraining() <-chan struct{} { return s.peerDraining }
func (s *session) RTT() time.Duration            { return time.Duration(s.rtt.Load()) }
func (s *session) PeerUnreachable() Routes       { return Routes(s.peerUnreachable.Load()) }

// TellUnreachable returns at once; the pinger sends the latest set, so that
// a stalled link holds no caller and a burst of changes costs one message.
func (s *session) TellUnreachable(r Routes) {
	if Routes(s.unreachable.Swap(uint64(r))) == r {
		return
	}
	select {
	case s.reachKick <- struct{}{}:
	default: // already kicked: the pinger sends the latest
	}
}

// Close ends the session and waits for its control goroutines.
func (s *session) Close() error {
	err := s.muxer.Close()
	s.wg.Wait()
	return err
}

// Drain returns at once; the notice goes out from the pinger, so that a
// stalled link holds no caller.
func (s *session) Drain() error {
	s.drainOnce.Do(func() { close(s.drain) })
	return nil
}

func (s *session) send(typ byte, v int64) error {
	var b [ctlLen]byte
	b[0] = typ
	binary.BigEndian.PutUint64(b[1:], uint64(v))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.ctl.Write(b[:])
	return err
}

// read handles the peer's messages until the control stream ends, which
// ends the session: a control stream ends only with its session, or with a
// broken peer.
func (s *session) read() {
	defer s.wg.Done()
	defer s.muxer.Close()
	var b [ctlLen]byte
	for {
		if _, err := io.ReadFull(s.ctl, b[:]); err != nil {
			return
		}
		v := int64(binary.BigEndian.Uint64(b[1:]))
		switch b[0] {
		case ctlPing:
			if err := s.send(ctlPong, v); err != nil {
				return
			}
		case ctlPong:
			s.pmu.Lock()
			s.lastPong = max(s.lastPong, v)
			close(s.pong)
			s.pong = make(chan struct{})
			s.pmu.Unlock()
		case ctlDrain:
			s.peerOnce.Do(func() { close(s.peerDraining) })
		case ctlReach:
			// One line a change and session: an edge keeps a few.
			switch r := Routes(v); {
			case Routes(s.peerUnreachable.Swap(uint64(v))) == r:
			case r != 0:
				s.log.Warn("the origin cannot reach WhatsApp", "routes", r.String())
			default:
				s.log.Info("the origin reaches WhatsApp again")
			}
		}
	}
}

// ping pings now and every KeepAlive, keeps the RTT, closes the session when
// a pong is late, and sends the drain notice.
func (s *session) ping() {
	defer s.wg.Done()
	drain := s.drain
	next := time.NewTimer(0)
	defer next.Stop()
	for {
		select {
		case <-next.C:
		case <-drain:
			drain = nil
			if s.send(ctlDrain, 0) != nil {
				s.muxer.Close()
				return
			}
			continue
		case <-s.reachKick:
			if s.send(ctlReach, int64(s.unreachable.Load())) != nil {
				s.muxer.Close()
				return
			}
			continue
		case <-s.Done():
			return
		}
		sent := time.Since(s.start)
		if s.send(ctlPing, int64(sent)) != nil {
			s.muxer.Close()
			return
		}
		if !s.awaitPong(int64(sent)) {
			return
		}
		next.Reset(s.keepAlive)
	}
}

// ponged reports whether the pong of the ping sent at sent, or of a later
// one, has come, and returns a channel closed at the next pong.
func (s *session) ponged(sent int64) (bool, <-chan struct{}) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.lastPong >= sent, s.pong
}

// awaitPong waits for the pong of the ping sent at sent, and reports whether
// the session goes on.
func (s *session) awaitPong(sent int64) bool {
	timeout := time.NewTimer(s.pingTimeout)
	defer timeout.Stop()
	for {
		ok, next := s.ponged(sent)
		if ok {
			// A probe's later ping may have been answered first; the
			// RTT is then an overestimate by the time between them.
			s.rtt.Store(int64(time.Since(s.start)) - sent)
			return true
		}
		select {
		case <-next:
		case <-timeout.C:
			if heard := s.muxer.Heard(); !heard.IsZero() {
				if left := s.pingTimeout - time.Since(heard); left > 0 {
					// The peer speaks, so the link is alive: the pong
					// is queued behind data.
					timeout.Reset(left)
					continue
				}
			}
			s.log.Warn("tunnel stalled: no pong, closing the session", "timeout", s.pingTimeout)
			s.muxer.Close()
			return false
		case <-s.Done():
			return false
		}
	}
}

// probeShare is how recent a probe's ping may be for another probe to wait
// for its pong rather than send one: a burst of clients costs one ping.
const probeShare = 10 * time.Millisecond

// Probe pings the peer now and waits for the pong, or for anything else
// heard from the peer after the ping, until ctx ends. It tells a session
// that has stopped carrying anything from an origin that is slow to
// answer a stream because its dial is.
func (s *session) Probe(ctx context.Context) error {
	sent := s.lastProbe.Load()
	if now := int64(time.Since(s.start)); now-sent > int64(probeShare) {
		sent = now
		s.lastProbe.Store(sent)
		select {
		case <-s.Done():
			return ErrSessionEnded
		default:
		}
		// The ping goes out on a goroutine of its own: on a stalled link
		// the control stream's write blocks (behind frames queued for a
		// connection that takes nothing), and the probe must still end
		// with ctx. The session's Close ends that write, and waits for it.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.send(ctlPing, sent)
		}()
	}
	for {
		ok, next := s.ponged(sent)
		if ok {
			return nil
		}
		select {
		case <-next:
		case <-s.Done():
			return ErrSessionEnded
		case <-ctx.Done():
			if s.muxer.Heard().After(s.start.Add(time.Duration(sent))) {
				return nil // the pong waits behind the peer's data
			}
			return fmt.Errorf("probe: no answer: %w", context.Cause(ctx))
		}
	}
}

// ErrSessionEnded is what waits on a session that has ended fail with.
var ErrSessionEnded = errors.New("session ended")
