package tunnel

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ferryproxy/ferry/metrics"
)

// Peer is a peer that sessions are dialled to: an edge's origin, or in
// reverse mode an origin's edge.
type Peer struct {
	Name   string // the URL, for logs and metrics; it holds no secret
	Dialer Dialer
}

// DefaultPool is how many sessions are kept to each peer: one lost session
// then takes only its share of clients, and the others carry new ones while
// it is redialled.
const DefaultPool = 2

// Keeper keeps one session to one peer up: the edge's to its origins, and in
// reverse mode the origin's to its edges.
type Keeper struct {
	Peer
	// Backoff spaces redials; the zero value holds the defaults.
	Backoff Backoff
	Metrics *metrics.Metrics // nil counts nothing
	Log     *slog.Logger
}

// Run dials and hands each session to hold, which returns once the session
// should be replaced (it ended, or its peer drains) and says why; then Run
// dials again after a backoff, until ctx ends or stop is closed.
func (k *Keeper) Run(ctx context.Context, stop <-chan struct{}, hold func(Session) (why string)) {
	b := k.Backoff
	for {
		select {
		case <-stop:
			return
		default:
		}
		s, err := k.Dialer.Dial(ctx)
		if ctx.Err() == nil {
			k.Metrics.TunnelDial(k.Name, err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := b.Next()
			k.Log.Warn("tunnel dial failed", "peer", k.Name, "err", err, "retry_in", d.Round(time.Millisecond))
			if !sleep(ctx, stop, d) {
				return
			}
			continue
		}
		up := time.Now()
		why := hold(s) // which logs the session up once it is in service
		if ctx.Err() != nil {
			return
		}
		k.Metrics.TunnelReconnect(k.Name)
		if time.Since(up) >= b.healthy() {
			b.Reset()
		}
		d := b.Next()
		k.Log.Warn("tunnel "+why, "peer", k.Name, "after", time.Since(up).Round(time.Second), "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, stop, d) {
			return
		}
	}
}

// Backoff is exponential backoff with full jitter: the n-th wait is drawn
// uniformly from [0, min(Max, Base·2^n)), so that peers cut off together do
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

// sleep waits for d, and reports whether it passed before ctx ended or stop
// was closed.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}
