// Package pool keeps tunnel sessions up: the redial policy (Keeper,
// Backoff) that an edge uses towards its origins and an origin in reverse
// mode towards its edges, and the edge's Pool of sessions that clients'
// streams are opened on.
package pool

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"ferry/metrics"
	"ferry/tunnel"
)

// Peer is a peer that sessions are dialled to: an edge's origin, or in
// reverse mode an origin's edge.
type Peer struct {
	Name   string // the URL, for logs and metrics; it holds no secret
	Dialer tunnel.Dialer
	// Fallback marks the last link: dialled only while no other peer has
	// a session in service (fallback.go).
	Fallback bool
}

// DefaultSize is how many sessions are kept to each peer: one lost session
// then takes only its share of clients, and the others carry new ones while
// it is redialled.
const DefaultSize = 2

// Keeper keeps one session to one peer up: the edge's to its origins, and in
// reverse mode the origin's to its edges.
type Keeper struct {
	Peer
	// Backoff spaces redials; the zero value holds the defaults.
	Backoff Backoff
	Metrics *metrics.Metrics // nil counts nothing
	Log     *slog.Logger
	// Hold is given each session and returns once the session should be
	// replaced (it ended, or its peer drains) or ctx has ended, and says
	// why. It owns the session: it closes it, maybe after it returns.
	Hold func(ctx context.Context, s tunnel.Session) (why string)
}

// Run dials, hands each session to Hold, and dials again after a backoff
// once Hold returns, until ctx ends; it returns when the last Hold has.
func (k *Keeper) Run(ctx context.Context) {
	b := k.Backoff
	for ctx.Err() == nil {
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
			sleep(ctx, d)
			continue
		}
		up := time.Now()
		why := k.Hold(ctx, s) // which logs the session up once it is in service
		if ctx.Err() != nil {
			return
		}
		k.Metrics.TunnelReconnect(k.Name)
		if time.Since(up) >= b.healthy() {
			b.Reset()
		}
		d := b.Next()
		k.Log.Warn("tunnel "+why, "peer", k.Name, "after", time.Since(up).Round(time.Second), "retry_in", d.Round(time.Millisecond))
		sleep(ctx, d)
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
	base, ceil := cmp.Or(b.Base, 250*time.Millisecond), cmp.Or(b.Max, 15*time.Second)
	ceil = max(ceil, 1) // rand.Int64N needs a positive bound
	d := ceil
	if b.n < 32 && base<<b.n < ceil && base<<b.n > 0 {
		d = base << b.n
	}
	b.n++
	return time.Duration(rand.Int64N(int64(d))) + 1
}

func (b *Backoff) Reset() { b.n = 0 }

func (b *Backoff) healthy() time.Duration { return cmp.Or(b.Healthy, 30*time.Second) }

// sleep waits for d or the end of ctx.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
