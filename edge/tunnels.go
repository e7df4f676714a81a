package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/ferryproxy/ferry/tunnel"
)

// Origin is one origin the edge keeps a session to.
type Origin struct {
	Name   string // for logs: the URL, which holds no secret
	Dialer tunnel.Dialer
}

// DefaultWait is how long a client waits for a session when none is up.
const DefaultWait = 5 * time.Second

// DefaultPool is how many sessions the edge keeps to each origin: one lost
// session then takes only its share of clients, and the others carry new
// ones while it is redialled.
const DefaultPool = 2

// ErrNoSession is returned when no session came up within the wait.
var ErrNoSession = errors.New("no tunnel session up")

// Tunnels keeps Pool sessions up to each origin and opens each client's
// stream on the first origin, in order, with a session up, on its session
// with the fewest streams.
type Tunnels struct {
	Origins []Origin
	// Pool is how many sessions to keep per origin; zero means DefaultPool.
	Pool int
	// Wait is how long Connect waits for a session; zero means DefaultWait.
	Wait time.Duration
	// Backoff spaces redials; the zero value holds the defaults.
	Backoff Backoff
	Log     *slog.Logger

	mu      sync.Mutex
	slots   []*slot       // Pool per origin, in the origins' order
	changed chan struct{} // closed and replaced whenever a slot changes
}

// slot holds one of an origin's sessions while it is up.
type slot struct {
	origin int
	cur    *live // nil while down
}

// live is a session in service.
type live struct {
	sess    tunnel.Session
	streams int           // open on sess, under Tunnels.mu
	retire  chan struct{} // closed when the origin drains: no new streams
	once    sync.Once
}

func (l *live) retireNow() { l.once.Do(func() { close(l.retire) }) }

func (l *live) retired() bool {
	select {
	case <-l.retire:
		return true
	default:
		return false
	}
}

// Run keeps the sessions up until ctx ends, then closes them and returns.
func (t *Tunnels) Run(ctx context.Context) {
	pool := t.Pool
	if pool <= 0 {
		pool = DefaultPool
	}
	t.mu.Lock()
	t.slots = nil
	for i := range t.Origins {
		for range pool {
			t.slots = append(t.slots, &slot{origin: i})
		}
	}
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	slots := t.slots
	t.mu.Unlock()

	var wg sync.WaitGroup
	for _, sl := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.keep(ctx, sl, &wg)
		}()
	}
	wg.Wait()
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

// SessionsUp returns, per origin in order, how many of its sessions are up.
func (t *Tunnels) SessionsUp() []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := make([]int, len(t.Origins))
	for _, sl := range t.slots {
		if sl.cur != nil && !sl.cur.retired() {
			n[sl.origin]++
		}
	}
	return n
}

// Changed returns a channel closed at the next change of any session.
func (t *Tunnels) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return t.changed
}

// keep dials a slot's origin, holds the session until it ends or is
// retired, and redials with backoff until ctx ends. A retired session lives
// on for its streams, closed by its origin or at ctx's end; wg counts the
// goroutine that waits for that.
func (t *Tunnels) keep(ctx context.Context, sl *slot, wg *sync.WaitGroup) {
	o := t.Origins[sl.origin]
	b := t.Backoff
	for {
		s, err := o.Dialer.Dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := b.Next()
			t.Log.Warn("tunnel dial failed", "origin", o.Name, "err", err, "retry_in", d.Round(time.Millisecond))
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		up := time.Now()
		t.Log.Info("tunnel up", "origin", o.Name)
		l := &live{sess: s, retire: make(chan struct{})}
		t.set(sl, l)
		why := "down"
		select {
		case <-s.Done():
		case <-ctx.Done():
		case <-l.retire:
			why = "draining"
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
		if ctx.Err() != nil {
			return
		}
		if time.Since(up) >= b.healthy() {
			b.Reset()
		}
		d := b.Next()
		t.Log.Warn("tunnel "+why, "origin", o.Name, "after", time.Since(up).Round(time.Second), "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return
		}
	}
}

func (t *Tunnels) set(sl *slot, l *live) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sl.cur = l
	close(t.changed)
	t.changed = make(chan struct{})
}

// pick counts a new stream on the session it returns: of the first origin
// with a session up, the session with the fewest streams. It returns nil
// when none is up, and a channel closed at the next change.
func (t *Tunnels) pick() (*live, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	var best *live
	bestOrigin := -1
	for _, sl := range t.slots { // grouped by origin, in order
		if bestOrigin >= 0 && sl.origin != bestOrigin {
			break
		}
		if l := sl.cur; l != nil && !l.retired() && (best == nil || l.streams < best.streams) {
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

// Connect opens a stream for route on a live session (see Tunnels),
// waiting up to Wait for one to come up. It is an edge.ConnectFunc. The
// client's address is sent only to an origin that asked for it.
func (t *Tunnels) Connect(ctx context.Context, route string, client netip.AddrPort) (net.Conn, error) {
	wait := t.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		l, changed := t.pick()
		if l != nil {
			h := tunnel.Header{Route: route}
			if l.sess.ClientAddress() {
				h.Client = client
			}
			st, err := tunnel.Open(ctx, l.sess, h)
			if err == nil {
				return &stream{Stream: st, t: t, l: l}, nil
			}
			t.release(l)
			if errors.Is(err, tunnel.ErrGoAway) {
				l.retireNow()
				continue
			}
			select {
			case <-l.sess.Done():
				// The keeper will notice and replace it; wait for that.
			default:
				return nil, err
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, fmt.Errorf("%w within %v", ErrNoSession, wait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// stream counts itself out of its session at Close, and retires the
// session when the origin answers that it is draining.
type stream struct {
	tunnel.Stream
	t    *Tunnels
	l    *live
	once sync.Once
}

// AwaitReply waits for the origin's reply; see tunnel.Open.
func (s *stream) AwaitReply() error {
	err := s.Stream.(interface{ AwaitReply() error }).AwaitReply()
	if errors.Is(err, tunnel.ReplyDraining) {
		s.l.retireNow()
	}
	return err
}

func (s *stream) Close() error {
	s.once.Do(func() { s.t.release(s.l) })
	return s.Stream.Close()
}

// Backoff is exponential backoff with full jitter: the n-th wait is drawn
// uniformly from [0, min(Max, Base·2^n)), so that edges cut off together do
// not redial in step.
type Backoff struct {
	Base    time.Duration // zero means 250 ms
	Max     time.Duration // zero means 15 s
	Healthy time.Duration // a session up this long resets the backoff; zero means 30 s
	n       int
}

func (b *Backoff) Next() time.Duration {
	base, ceil := b.Base, b.Max
	if base <= 0 {
		base = 250 * time.Millisecond
	}
	if ceil <= 0 {
		ceil = 15 * time.Second
	}
	d := ceil
	if b.n < 32 && base<<b.n < ceil && base<<b.n > 0 {
		d = base << b.n
	}
	b.n++
	return time.Duration(rand.Int64N(int64(d))) + 1
}

func (b *Backoff) Reset() { b.n = 0 }

func (b *Backoff) healthy() time.Duration {
	if b.Healthy > 0 {
		return b.Healthy
	}
	return 30 * time.Second
}

// sleep waits for d or the end of ctx, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
