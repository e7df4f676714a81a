package pool

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"ferry/metrics"
	"ferry/tunnel"
)

// Pool keeps Size sessions up to each of Peers, takes the sessions of peers
// that dial in on Listeners (an edge's, in reverse mode), and lends them out
// for streams (Pick): of the first peer, in order, with a session in
// service, the session with the fewest streams. Sessions dialled in come
// after every listed peer.
type Pool struct {
	Peers []Peer
	// Listeners accept sessions from peers that dial in; Run closes them.
	Listeners []tunnel.Listener
	// Size is how many sessions to keep per peer; zero means DefaultSize.
	Size int
	// Backoff spaces redials; the zero value holds the defaults.
	Backoff Backoff
	Metrics *metrics.Metrics // nil counts nothing
	Log     *slog.Logger

	mu      sync.Mutex
	slots   []*slot       // Size per peer, in the peers' order, then one per session dialled in
	changed chan struct{} // closed and replaced whenever a slot changes
	untried untried       // fallback.go
}

// DialledIn is the peer name, in metrics, of sessions that peers dialled.
const DialledIn = "dialled-in"

// slot holds one of a peer's sessions while it is in service.
type slot struct {
	peer int   // index in Peers; len(Peers) for sessions dialled in
	cur  *Live // nil while down
}

// Live is a session in service, lent out by Pick.
type Live struct {
	Session tunnel.Session
	streams int           // lent out, under Pool.mu
	retire  chan struct{} // closed by Retire: no new streams
	once    sync.Once
	idle    chan struct{} // closed once retired with no stream lent out
	idled   bool          // under Pool.mu
}

func newLive(s tunnel.Session) *Live {
	return &Live{Session: s, retire: make(chan struct{}), idle: make(chan struct{})}
}

// Retire takes l out of service: it gets no new streams, its keeper dials
// a replacement, and it is closed once its streams have ended. It reports
// whether this call retired it.
func (l *Live) Retire() bool {
	first := false
	l.once.Do(func() {
		close(l.retire)
		first = true
	})
	return first
}

func (l *Live) retired() bool {
	select {
	case <-l.retire:
		return true
	default:
		return false
	}
}

func (p *Pool) init() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.initLocked()
}

// initLocked is init for a holder of p.mu.
func (p *Pool) initLocked() {
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
}

// Run keeps the sessions up until ctx ends, then drains: it tells every
// peer so at once (an origin then expects no new stream, and in reverse
// mode dials no replacement), stops dialling and accepting, lends out no
// more streams, and closes each session once the streams lent out on it
// have ended. It returns when every session is closed.
func (p *Pool) Run(ctx context.Context) {
	p.init()
	size := cmp.Or(p.Size, DefaultSize)
	p.mu.Lock()
	p.slots = nil
	for i := range p.Peers {
		for range size {
			p.slots = append(p.slots, &slot{peer: i})
		}
	}
	slots := p.slots
	p.mu.Unlock()

	for i, o := range p.Peers {
		p.peerMetrics(o.Name, i)
	}
	if len(p.Listeners) > 0 {
		p.peerMetrics(DialledIn, len(p.Peers))
	}
	var wg sync.WaitGroup
	fallback := p.startFallback(ctx, &wg) // fallback.go
	for _, sl := range slots {
		o := p.Peers[sl.peer]
		if fallback {
			o = p.wrapDialer(o)
		}
		k := &Keeper{Peer: o, Backoff: p.Backoff, Metrics: p.Metrics, Log: p.Log,
			Hold: func(ctx context.Context, s tunnel.Session) string { return p.hold(ctx, o.Name, sl, s, &wg) }}
		wg.Go(func() { k.Run(ctx) })
	}
	for _, l := range p.Listeners {
		wg.Go(func() {
			// Accept returns at ctx's end, or when l fails; l is closed
			// before Run can return, so that its port is free after.
			p.accept(ctx, l, &wg)
			l.Close()
		})
	}
	wg.Wait()
}

// peerMetrics registers the gauges of the sessions of peer i, named name.
func (p *Pool) peerMetrics(name string, i int) {
	p.Metrics.Peer(name, func() float64 { return float64(p.SessionsUp(i)) }, func() time.Duration { return p.RTT(i) })
}

// RTT is the mean round trip of the latest pings of peer i's sessions
// (len(Peers) for those dialled in), zero when none is up.
func (p *Pool) RTT(i int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sum time.Duration
	n := 0
	for _, sl := range p.slots {
		if sl.peer == i && sl.cur != nil {
			if rtt := sl.cur.Session.RTT(); rtt > 0 {
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

// accept serves the sessions of peers that dial in on l, each in a slot
// of its own, until l closes.
func (p *Pool) accept(ctx context.Context, l tunnel.Listener, wg *sync.WaitGroup) {
	name := "dialled in on " + l.Addr().String()
	for {
		s, err := l.Accept(ctx)
		if err != nil {
			return
		}
		sl := &slot{peer: len(p.Peers)}
		p.mu.Lock()
		p.slots = append(p.slots, sl)
		p.mu.Unlock()
		wg.Go(func() {
			why := p.hold(ctx, name, sl, s, wg)
			p.mu.Lock()
			for i, x := range p.slots {
				if x == sl {
					p.slots = append(p.slots[:i], p.slots[i+1:]...)
					break
				}
			}
			p.mu.Unlock()
			p.Log.Info("tunnel "+why, "peer", name)
		})
	}
}

// Unreachable returns the routes that every session in service says its
// origin cannot reach: those no client of this edge can get to now. None
// while no session is in service (see Up).
func (p *Pool) Unreachable() tunnel.Routes { return p.unreachable(-1) }

// PeerUnreachable is Unreachable for the sessions of peer i alone; i ==
// len(Peers) is the sessions dialled in.
func (p *Pool) PeerUnreachable(i int) tunnel.Routes { return p.unreachable(i) }

// unreachable is Unreachable over peer i's sessions, or all for i < 0.
func (p *Pool) unreachable(i int) tunnel.Routes {
	p.mu.Lock()
	defer p.mu.Unlock()
	all, up := ^tunnel.Routes(0), false
	for _, sl := range p.slots {
		if sl.cur != nil && !sl.cur.retired() && (i < 0 || sl.peer == i) {
			all &= sl.cur.Session.PeerUnreachable()
			up = true
		}
	}
	if !up {
		return 0
	}
	return all
}

// Up reports whether at least one session is in service.
func (p *Pool) Up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sl := range p.slots {
		if sl.cur != nil {
			return true
		}
	}
	return false
}

// SessionsUp returns how many sessions of peer i are in service; i ==
// len(Peers) counts the sessions dialled in.
func (p *Pool) SessionsUp(i int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, sl := range p.slots {
		if sl.peer == i && sl.cur != nil && !sl.cur.retired() {
			n++
		}
	}
	return n
}

// Changed returns a channel closed at the next change of any session.
func (p *Pool) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.initLocked()
	return p.changed
}

// hold puts s in service in sl until it ends, its peer drains, it is
// retired, or ctx ends, and says which. Then s lends out no more streams,
// and is closed once those lent out have ended (or s ends); wg counts the
// goroutine that waits for that, so that a replacement is dialled
// meanwhile.
func (p *Pool) hold(ctx context.Context, peer string, sl *slot, s tunnel.Session, wg *sync.WaitGroup) string {
	l := newLive(s)
	p.set(sl, l)
	p.Log.Info("tunnel up", "peer", peer)
	why := "down"
	select {
	case <-s.Done():
	case <-l.retire:
		why = "retired"
	case <-s.PeerDraining():
		why = "draining"
	case <-ctx.Done():
		why = "closed: this end drains"
		s.Drain()
	}
	p.mu.Lock()
	l.Retire()
	p.idleLocked(l)
	sl.cur = nil
	p.changedLocked()
	p.mu.Unlock()
	wg.Go(func() {
		select {
		case <-s.Done():
		case <-l.idle:
		}
		s.Close()
	})
	return why
}

func (p *Pool) set(sl *slot, l *Live) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sl.cur = l
	p.changedLocked()
}

func (p *Pool) changedLocked() {
	p.initLocked()
	close(p.changed)
	p.changed = make(chan struct{})
}

// idleLocked closes l.idle if l is retired and lends out no stream.
func (p *Pool) idleLocked(l *Live) {
	if l.streams == 0 && l.retired() && !l.idled {
		l.idled = true
		close(l.idle)
	}
}

// Pick lends out a stream's place on a session for route: of the first
// peer with a session in service whose origin has not said it cannot
// reach route (or, failing that, of the first peer with a session in
// service), the session with the fewest streams, passing over those in
// skip. It returns nil when none is in service, and a channel closed at
// the next change. Each Live it returns is given back with Release.
func (p *Pool) Pick(skip []*Live, route tunnel.Routes) (*Live, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.initLocked()
	best := p.pickLocked(skip, route)
	if best == nil && route != 0 {
		best = p.pickLocked(skip, 0)
	}
	if best != nil {
		best.streams++
	}
	return best, p.changed
}

// pickLocked is Pick's choice among the sessions whose origin reaches
// avoid's routes, for a holder of p.mu.
func (p *Pool) pickLocked(skip []*Live, avoid tunnel.Routes) *Live {
	var best *Live
	bestPeer := -1
	for _, sl := range p.slots { // grouped by peer, in order
		if bestPeer >= 0 && sl.peer != bestPeer {
			break
		}
		l := sl.cur
		if l == nil || l.retired() || slices.Contains(skip, l) || l.Session.PeerUnreachable()&avoid != 0 {
			continue
		}
		if best == nil || l.streams < best.streams {
			best, bestPeer = l, sl.peer
		}
	}
	return best
}

// Release gives back a place Pick lent out.
func (p *Pool) Release(l *Live) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l.streams--
	p.idleLocked(l)
}
