package edge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryproxy/ferry/metrics"
	"github.com/ferryproxy/ferry/tunnel"
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

// Tunnels keeps Pool sessions up to each origin, takes the sessions of
// origins that dial in (reverse mode), and opens each client's stream on the
// first origin, in order, with a session up, on its session with the fewest
// streams. Sessions dialled in come after every listed origin.
type Tunnels struct {
	Origins []tunnel.Peer
	// Listeners accept sessions from origins that dial this edge; Tunnels
	// closes them.
	Listeners []tunnel.Listener
	// Pool is how many sessions to keep per origin; zero means tunnel.DefaultPool.
	Pool int
	// Wait is how long Send may take to connect a client; zero means
	// DefaultWait.
	Wait time.Duration
	// Backoff spaces redials; the zero value holds the defaults.
	Backoff tunnel.Backoff
	Metrics *metrics.Metrics // nil counts nothing
	Log     *slog.Logger

	mu      sync.Mutex
	slots   []*slot       // Pool per origin, in the origins' order, then one per session dialled in
	changed chan struct{} // closed and replaced whenever a slot changes

	drain     chan struct{} // closed by Drain
	drainOnce sync.Once
}

// slot holds one of an origin's sessions while it is up.
type slot struct {
	origin int   // index in Origins; len(Origins) for sessions dialled in
	cur    *live // nil while down
}

// live is a session in service.
type live struct {
	sess    tunnel.Session
	streams int           // open on sess, under Tunnels.mu
	retire  chan struct{} // closed when the origin drains: no new streams
	once    sync.Once
}

// retireNow retires l, and reports whether it was the first to.
func (l *live) retireNow() bool {
	first := false
	l.once.Do(func() { close(l.retire); first = true })
	return first
}

func (l *live) retired() bool {
	select {
	case <-l.retire:
		return true
	default:
		return false
	}
}

func (t *Tunnels) init() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.initLocked()
}

// initLocked is init for a holder of t.mu.
func (t *Tunnels) initLocked() {
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	if t.drain == nil {
		t.drain = make(chan struct{})
	}
}

// Serve runs srv with the sessions of tunnels until ctx ends, then drains
// both: the origins hear at once that this edge drains, and the sessions
// outlive the client listeners, carrying the draining clients until
// srv.Run returns.
func Serve(ctx context.Context, srv *Server, tunnels *Tunnels, grace time.Duration) error {
	tctx, stopTunnels := context.WithCancel(context.WithoutCancel(ctx))
	stopDrain := context.AfterFunc(ctx, tunnels.Drain)
	defer stopDrain()
	var wg sync.WaitGroup
	wg.Go(func() { tunnels.Run(tctx) })
	err := srv.Run(ctx, grace)
	stopTunnels()
	wg.Wait()
	return err
}

// Run keeps the sessions up until ctx ends, then closes them and the
// listeners, and returns.
func (t *Tunnels) Run(ctx context.Context) {
	t.init()
	pool := t.Pool
	if pool <= 0 {
		pool = tunnel.DefaultPool
	}
	t.mu.Lock()
	t.slots = nil
	for i := range t.Origins {
		for range pool {
			t.slots = append(t.slots, &slot{origin: i})
		}
	}
	slots := t.slots
	t.mu.Unlock()

	for i, o := range t.Origins {
		t.peerMetrics(o.Name, i)
	}
	if len(t.Listeners) > 0 {
		t.peerMetrics(DialledIn, len(t.Origins))
	}
	var wg sync.WaitGroup
	for _, sl := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := t.Origins[sl.origin]
			k := &tunnel.Keeper{Peer: o, Backoff: t.Backoff, Metrics: t.Metrics, Log: t.Log}
			k.Run(ctx, t.drain, func(s tunnel.Session) string { return t.hold(ctx, o.Name, sl, s, &wg) })
		}()
	}
	for _, l := range t.Listeners {
		wg.Add(2)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
			case <-t.drain:
			}
			l.Close()
		}()
		go func() {
			defer wg.Done()
			t.accept(ctx, l, &wg)
		}()
	}
	wg.Wait()
}

// DialledIn is the peer name, in metrics, of sessions that origins dialled.
const DialledIn = "dialled-in"

// peerMetrics registers the gauges of the sessions of origin i, named name.
func (t *Tunnels) peerMetrics(name string, i int) {
	t.Metrics.Peer(name, func() float64 { return float64(t.SessionsUp(i)) }, func() time.Duration { return t.RTT(i) })
}

// RTT is the mean round trip of the latest pings of origin i's sessions
// (len(Origins) for those dialled in), zero when none is up.
func (t *Tunnels) RTT(i int) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var sum time.Duration
	n := 0
	for _, sl := range t.slots {
		if sl.origin == i && sl.cur != nil {
			if rtt := sl.cur.sess.RTT(); rtt > 0 {
				sum += rtt
				n++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return sum / time.Duration(n)
}

// accept serves the sessions of origins that dial in on l, each in a slot
// of its own, until l closes.
func (t *Tunnels) accept(ctx context.Context, l tunnel.Listener, wg *sync.WaitGroup) {
	name := "dialled in on " + l.Addr().String()
	for {
		s, err := l.Accept(ctx)
		if err != nil {
			return
		}
		sl := &slot{origin: len(t.Origins)}
		t.mu.Lock()
		t.slots = append(t.slots, sl)
		t.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			why := t.hold(ctx, name, sl, s, wg)
			t.mu.Lock()
			for i, x := range t.slots {
				if x == sl {
					t.slots = append(t.slots[:i], t.slots[i+1:]...)
					break
				}
			}
			t.mu.Unlock()
			t.Log.Info("tunnel "+why, "peer", name)
		}()
	}
}

// Drain tells every origin that this edge drains and stops dialling and
// accepting sessions; live ones carry their streams on until Run's ctx ends.
func (t *Tunnels) Drain() {
	t.init()
	t.drainOnce.Do(func() { close(t.drain) })
}

// Up reports whether at least one session is up.
func (t *Tunnels) Up() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sl := range t.slots {
		if sl.cur != nil {
			return true
		}
	}
	return false
}

// SessionsUp returns how many sessions of origin i are up and in service;
// i == len(Origins) counts the sessions dialled in.
func (t *Tunnels) SessionsUp(i int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, sl := range t.slots {
		if sl.origin == i && sl.cur != nil && !sl.cur.retired() {
			n++
		}
	}
	return n
}

// Changed returns a channel closed at the next change of any session.
func (t *Tunnels) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.initLocked()
	return t.changed
}

// hold puts s in service in sl until it ends, its origin drains, or ctx
// ends, and says which. When this edge drains, it tells the origin and
// holds on. A session whose origin drains lives on for its streams, closed
// by its origin or at ctx's end; wg counts the goroutine that waits for that.
func (t *Tunnels) hold(ctx context.Context, peer string, sl *slot, s tunnel.Session, wg *sync.WaitGroup) string {
	l := &live{sess: s, retire: make(chan struct{})}
	t.set(sl, l)
	t.Log.Info("tunnel up", "peer", peer)
	why := "down"
	drain := t.drain
wait:
	for {
		select {
		case <-s.Done():
			break wait
		case <-ctx.Done():
			break wait
		case <-l.retire:
			why = "draining"
			break wait
		case <-s.PeerDraining():
			why = "draining"
			break wait
		case <-drain:
			drain = nil
			s.Drain()
		}
	}
	t.set(sl, nil)
	if why == "draining" && ctx.Err() == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-s.Done():
			case <-ctx.Done():
			}
			s.Close()
		}()
	} else {
		s.Close()
	}
	return why
}

func (t *Tunnels) set(sl *slot, l *live) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sl.cur = l
	close(t.changed)
	t.changed = make(chan struct{})
}

// pick counts a new stream on the session it returns: of the first origin
// with a session up, the session with the fewest streams, passing over
// those in skip. It returns nil when none is up, and a channel closed at the
// next change.
func (t *Tunnels) pick(skip []*live) (*live, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.initLocked()
	var best *live
	bestOrigin := -1
	for _, sl := range t.slots { // grouped by origin, in order
		if bestOrigin >= 0 && sl.origin != bestOrigin {
			break
		}
		if l := sl.cur; l != nil && !l.retired() && !slices.Contains(skip, l) && (best == nil || l.streams < best.streams) {
			best, bestOrigin = l, sl.origin
		}
	}
	if best != nil {
		best.streams++
	}
	return best, t.changed
}

func (t *Tunnels) release(l *live) {
	t.mu.Lock()
	l.streams--
	t.mu.Unlock()
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
	var tried []*live
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
	sess := st.l.sess
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
	if silent.Load() {
		if st.l.retireNow() {
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
func (t *Tunnels) open(ctx context.Context, route, serverName string, client netip.AddrPort, skip []*live, lastErr error) (*stream, error) {
	tried := slices.Clip(skip)
	for {
		l, changed := t.pick(tried)
		if l != nil {
			h := tunnel.Header{Route: route, ServerName: serverName}
			if l.sess.ClientAddress() {
				h.Client = client
			}
			octx, cancel := context.WithTimeout(ctx, OpenTimeout)
			st, err := tunnel.Open(octx, l.sess, h)
			cancel()
			if err == nil {
				return &stream{EdgeStream: st, t: t, l: l}, nil
			}
			t.release(l)
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
	l    *live
	once sync.Once
}

// AwaitReply waits for the origin's reply; see tunnel.Open.
func (s *stream) AwaitReply() error {
	err := s.EdgeStream.AwaitReply()
	if errors.Is(err, tunnel.ReplyDraining) {
		s.l.retireNow()
	}
	return err
}

func (s *stream) Close() error {
	s.once.Do(func() { s.t.release(s.l) })
	return s.EdgeStream.Close()
}
