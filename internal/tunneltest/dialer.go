package tunneltest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"ferry/tunnel"
)

// Dialer is a tunnel.Dialer that counts its dials and gets each session
// from Next.
type Dialer struct {
	// Next makes or finds the session of one dial: a new Pair's, another
	// Dialer's (to count a real transport's dials), or one of a list.
	Next func(ctx context.Context) (tunnel.Session, error)
	n    atomic.Int64
}

var _ tunnel.Dialer = (*Dialer)(nil)

func (d *Dialer) Dial(ctx context.Context) (tunnel.Session, error) {
	d.n.Add(1)
	return d.Next(ctx)
}

// Dials is how many times Dial was called.
func (d *Dialer) Dials() int64 { return d.n.Load() }

// ErrNoSession is what the Dial of Sessions' Dialer fails with once it has
// handed out every session it was given.
var ErrNoSession = errors.New("tunneltest: no more sessions")

// Sessions returns a Dialer that hands out ss, one per dial, then fails
// with ErrNoSession: a session that ended is not brought back.
func Sessions(ss ...tunnel.Session) *Dialer {
	var mu sync.Mutex
	return &Dialer{Next: func(context.Context) (tunnel.Session, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(ss) == 0 {
			return nil, ErrNoSession
		}
		s := ss[0]
		ss = ss[1:]
		return s, nil
	}}
}
