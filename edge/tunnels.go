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

// ErrNoSession is returned when no session came up within the wait.
var ErrNoSession = errors.New("no tunnel session up")

// Tunnels keeps a session up to each origin and opens client streams on the
// first origin, in order, whose session is up.
type Tunnels struct {
	Origins []Origin
	// Wait is how long Connect waits for a session; zero means DefaultWait.
	Wait time.Duration
	// Backoff spaces redials; the zero value holds the defaults.
	Backoff Backoff
	Log     *slog.Logger

	mu       sync.Mutex
	sessions []tunnel.Session // by origin index; nil while down
	changed  chan struct{}    // closed and replaced whenever sessions changes
}

// Run keeps the sessions up until ctx ends, then closes them and returns.
func (t *Tunnels) Run(ctx context.Context) {
	t.mu.Lock()
	t.sessions = make([]tunnel.Session, len(t.Origins))
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	t.mu.Unlock()

	var wg sync.WaitGroup
	for i := range t.Origins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.keep(ctx, i)
		}()
	}
	wg.Wait()
}

// Up reports whether at least one session is up.
func (t *Tunnels) Up() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sessions {
		if s != nil {
			return true
		}
	}
	return false
}

// Changed returns a channel closed at the next change of any session.
func (t *Tunnels) Changed() <-chan struct{} {
	_, ch := t.first()
	return ch
}

// keep dials origin i, holds its session until it ends, and redials with
// backoff until ctx ends.
func (t *Tunnels) keep(ctx context.Context, i int) {
	o := t.Origins[i]
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
		t.set(i, s)
		select {
		case <-s.Done():
		case <-ctx.Done():
		}
		t.set(i, nil)
		s.Close()
		if ctx.Err() != nil {
			return
		}
		if time.Since(up) >= b.healthy() {
			b.Reset()
		}
		d := b.Next()
		t.Log.Warn("tunnel down", "origin", o.Name, "after", time.Since(up).Round(time.Second), "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return
		}
	}
}

func (t *Tunnels) set(i int, s tunnel.Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sessions[i] = s
	close(t.changed)
	t.changed = make(chan struct{})
}

// first returns the preferred live session, or nil, and a channel closed at
// the next change.
func (t *Tunnels) first() (tunnel.Session, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	for _, s := range t.sessions {
		if s != nil {
			return s, t.changed
		}
	}
	return nil, t.changed
}

// Connect opens a stream for route on the preferred live session, waiting
// up to Wait for one to come up. It is an edge.ConnectFunc. The client's
// address is sent only to an origin that asked for it.
func (t *Tunnels) Connect(ctx context.Context, route string, client netip.AddrPort) (net.Conn, error) {
	wait := t.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s, changed := t.first()
		if s != nil {
			h := tunnel.Header{Route: route}
			if s.ClientAddress() {
				h.Client = client
			}
			st, err := tunnel.Open(ctx, s, h)
			if err == nil {
				return st, nil
			}
			select {
			case <-s.Done():
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
