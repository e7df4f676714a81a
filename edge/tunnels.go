package edge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ferry/pool"
	"ferry/tunnel"
)

// DefaultWait is how long a client may wait to be connected: for a session
// to come up, for its stream to open and for the origin's reply, which
// comes once the origin has reached the route (its two alternatives take
// up to 5 s each by default).
const DefaultWait = 15 * time.Second

// OpenTimeout bounds the opening of a stream on one session: QUIC's blocks
// while the session is at its stream limit, and then the client goes to
// another session rather than wait for one of the session's streams to end.
const OpenTimeout = time.Second

// ErrNoSession is returned when no session came up within the wait.
var ErrNoSession = errors.New("no tunnel session up")

// Tunnels connects clients to their routes over the sessions of a
// pool.Pool: its Peers are the origins, its Listeners take the sessions of
// origins that dial in (reverse mode).
type Tunnels struct {
	pool.Pool
	// Wait is how long Send may take to connect a client; zero means
	// DefaultWait.
	Wait time.Duration
}

// Serve runs srv and tunnels until ctx ends, then drains both: the origins
// hear at once that this edge drains, and the sessions outlive the client
// listeners, carrying the draining clients' streams until they end.
func Serve(ctx context.Context, srv *Server, tunnels *Tunnels) error {
	var wg sync.WaitGroup
	wg.Go(func() { tunnels.Run(ctx) })
	err := srv.Run(ctx)
	wg.Wait()
	return err
}

// tries is how many streams Send opens for one client at most.
const tries = 4

// Send is the edge's ConnectFunc, the one owner of a client's connect: it
// opens a stream on a live session (see Tunnels), writes the header with
// the client's first bytes, waits for the origin's reply, and tries
// another session when this one turns out to be gone, draining, full or
// silent, all within Wait, the client's wait. The client's further bytes
// wait meanwhile; WhatsApp's clients wait for the server's answer to their
// first bytes anyway.
//
// A reply can take long: the origin dials the route's alternatives in turn
// before it answers. So a late reply alone passes nothing over; a session
// whose reply is late is probed (a ping on its control stream), and one
// that does not answer the probe within a few round trips is retired, so
// that its keeper replaces it, and the client goes on to the next.
func (t *Tunnels) Send(ctx context.Context, r Request) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(t.Wait, DefaultWait))
	defer cancel()
	serverName := r.ServerName
	var tried []*pool.Live
	var lastErr error
	for try := 1; ; try++ {
		st, err := t.open(ctx, r.Route, serverName, r.Client, tried, lastErr)
		if err != nil {
			return nil, err
		}
		err = t.await(ctx, st, r.First)
		if err == nil {
			return st, nil
		}
		st.Close()
		var reply tunnel.Reply
		if errors.As(err, &reply) && reply == tunnel.ReplyBadHeader && serverName != "" && try < tries {
			// An origin older than the header's version 2 reads no
			// server name: ask again without it, for the route's fixed
			// alternatives (whatsapp.net:443), as before names were sent.
			serverName = ""
			continue
		}
		refused := errors.As(err, &reply) && reply != tunnel.ReplyDraining
		// An origin that aborted the stream had dialled the target, which
		// may have had the first bytes: they are not sent twice.
		refused = refused || errors.Is(err, tunnel.ErrPeerAborted)
		if refused || try == tries || ctx.Err() != nil {
			return nil, err
		}
		tried, lastErr = append(tried, st.l), err
		t.Log.Debug("retrying a client on another session", "route", r.Route, "err", err)
	}
}

// Probing a session whose reply is late: after ProbeAfter, or twice its
// RTT if longer, the session is pinged, and retired if the pong has not
// come within ProbeTimeout, or four RTTs if longer. On a session that
// carries anything the pong comes in one RTT; a stalled one (its origin
// stopped, the UDP of its QUIC dropped) is thus passed over in about a
// second, where its own keepalive gives it up only after PingTimeout.
const (
	ProbeAfter   = 200 * time.Millisecond
	ProbeTimeout = time.Second
)

// errSilent is how a stream on a session that did not answer its probe
// ends.
var errSilent = errors.New("tunnel session not answering")

// await writes first on st and waits for the origin's reply until ctx
// ends, probing st's session once the reply is late.
func (t *Tunnels) await(ctx context.Context, st *stream, first []byte) error {
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	// Whatever wakes the write or the read (ctx's end before its deadline,
	// as at the edge's drain, or a silent probe) has ended before await
	// returns: none may touch a stream being relayed.
	woke := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		st.SetDeadline(time.Unix(1, 0))
		close(woke)
	})
	sess := st.l.Session
	rtt := sess.RTT()
	pctx, cancelProbe := context.WithCancel(ctx)
	var silent atomic.Bool
	probed := make(chan struct{})
	probe := time.AfterFunc(max(ProbeAfter, 2*rtt), func() {
		defer close(probed)
		tctx, cancel := context.WithTimeout(pctx, max(ProbeTimeout, 4*rtt))
		defer cancel()
		if err := sess.Probe(tctx); err != nil && pctx.Err() == nil {
			silent.Store(true)
			st.SetDeadline(time.Unix(1, 0))
		}
	})

	_, werr := st.Write(first)
	// A refusing origin may stop reading before the write lands: its
	// reply still says why.
	err := st.AwaitReply()
	cancelProbe()
	if !probe.Stop() {
		<-probed
	}
	if !stop() {
		<-woke
		if err == nil {
			err = ctx.Err()
		}
	}
	st.SetDeadline(time.Time{})
	// A reply that came wins over a probe that failed meanwhile: the
	// session answered, and the target may have the first bytes.
	if silent.Load() && err != nil {
		if st.l.Retire() {
			t.Log.Warn("tunnel session not answering: retired, new clients go to another", "rtt", rtt)
		}
		return errSilent
	}
	if err == nil {
		err = werr
	}
	return err
}

// open opens a stream for route on a live session (see Tunnels), passing
// over those in skip and waiting, until ctx ends, for one to come up. The
// client's address is sent only to an origin that asked for it. A session
// that cannot open a stream within OpenTimeout (QUIC's at its stream
// limit) is passed over for the next, for this client. lastErr is why the
// sessions in skip were.
func (t *Tunnels) open(ctx context.Context, route, serverName string, client netip.AddrPort, skip []*pool.Live, lastErr error) (*stream, error) {
	tried := slices.Clip(skip)
	for {
		l, changed := t.Pick(tried, tunnel.RouteOf(route))
		if l != nil {
			h := tunnel.Header{Route: route, ServerName: serverName}
			if l.Session.ClientAddress() {
				h.Client = client
			}
			octx, cancel := context.WithTimeout(ctx, OpenTimeout)
			st, err := tunnel.Open(octx, l.Session, h)
			cancel()
			if err == nil {
				return &stream{EdgeStream: st, t: t, l: l}, nil
			}
			t.Release(l)
			if ctx.Err() != nil || errors.Is(err, tunnel.ErrBadHeader) {
				return nil, err
			}
			// Dead (its keeper replaces it) or full: try another now,
			// or wait for one.
			tried, lastErr = append(tried, l), err
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			wait := cmp.Or(t.Wait, DefaultWait)
			if lastErr != nil {
				return nil, fmt.Errorf("%w within %v: %w", ErrNoSession, wait, lastErr)
			}
			return nil, fmt.Errorf("%w within %v", ErrNoSession, wait)
		}
	}
}

// stream counts itself out of its session at Close, and retires the
// session when the origin answers that it is draining.
type stream struct {
	*tunnel.EdgeStream
	t    *Tunnels
	l    *pool.Live
	once sync.Once
}

// AwaitReply waits for the origin's reply; see tunnel.Open.
func (s *stream) AwaitReply() error {
	err := s.EdgeStream.AwaitReply()
	if errors.Is(err, tunnel.ReplyDraining) {
		s.l.Retire()
	}
	return err
}

func (s *stream) Close() error {
	s.once.Do(func() { s.t.Release(s.l) })
	return s.EdgeStream.Close()
}
