package pool

import (
	"context"
	"sync"

	"ferry/tunnel"
)

// A peer whose Fallback is set is the last link (issue 17: a dns tunnel
// through the country's resolvers, for shutdowns): it is dialled only
// while no other peer has a session in service, and its sessions are
// retired as soon as one of those has one again. Retired, they lend out no
// new stream and close once their streams have ended, so that chats on
// them go on until they end while new clients go to the peer that came
// back; Pick prefers the peers listed first in any case.

// startFallback reports whether any peer is a fallback, and if so counts
// the other peers' slots untried and starts retireFallbacks. It runs
// before Run starts the keepers.
func (p *Pool) startFallback(ctx context.Context, wg *sync.WaitGroup) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	found := false
	for _, sl := range p.slots {
		if p.Peers[sl.peer].Fallback {
			found = true
		} else {
			p.untried.n++
		}
	}
	if !found {
		p.untried.n = 0
		return false
	}
	wg.Go(func() { p.retireFallbacks(ctx) })
	return true
}

// untried counts, under Pool.mu, the slots of other peers that have not
// finished their first dial: a fallback waits for them at the start, so
// that it is not dialled while the others are still dialling.
type untried struct{ n int }

// triedDialer counts its slot tried once its first Dial has returned.
type triedDialer struct {
	tunnel.Dialer
	p    *Pool
	once *sync.Once
}

func (d triedDialer) Dial(ctx context.Context) (tunnel.Session, error) {
	s, err := d.Dialer.Dial(ctx)
	d.once.Do(func() {
		d.p.mu.Lock()
		d.p.untried.n--
		d.p.changedLocked()
		d.p.mu.Unlock()
	})
	return s, err
}

// primaryUpLocked reports whether a peer that is not a fallback has a
// session in service, or has not finished its first dial. It runs under
// p.mu.
func (p *Pool) primaryUpLocked() bool {
	if p.untried.n > 0 {
		return true
	}
	for _, sl := range p.slots {
		if sl.peer < len(p.Peers) && !p.Peers[sl.peer].Fallback && sl.cur != nil && !sl.cur.retired() {
			return true
		}
	}
	return false
}

// waitPrimaryDown returns once no peer but fallbacks has a session in
// service, or ctx has ended.
func (p *Pool) waitPrimaryDown(ctx context.Context) error {
	for {
		p.mu.Lock()
		p.initLocked()
		up, changed := p.primaryUpLocked(), p.changed
		p.mu.Unlock()
		if !up {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// retireFallbacks retires the fallbacks' sessions whenever another peer
// has a session in service, until ctx ends.
func (p *Pool) retireFallbacks(ctx context.Context) {
	for {
		p.mu.Lock()
		p.initLocked()
		if p.untried.n == 0 && p.primaryUpLocked() {
			for _, sl := range p.slots {
				if sl.peer < len(p.Peers) && p.Peers[sl.peer].Fallback && sl.cur != nil {
					sl.cur.Retire()
				}
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// fallbackDialer dials a fallback peer once no other peer has a session in
// service: before, its Dial waits.
type fallbackDialer struct {
	tunnel.Dialer
	p *Pool
}

func (d fallbackDialer) Dial(ctx context.Context) (tunnel.Session, error) {
	if err := d.p.waitPrimaryDown(ctx); err != nil {
		return nil, err
	}
	return d.Dialer.Dial(ctx)
}

// wrapDialer makes a peer's dialer wait (a fallback's) or count its slot
// tried (the others'), when some peer is a fallback.
func (p *Pool) wrapDialer(o Peer) Peer {
	if o.Fallback {
		o.Dialer = fallbackDialer{Dialer: o.Dialer, p: p}
		return o
	}
	o.Dialer = triedDialer{Dialer: o.Dialer, p: p, once: new(sync.Once)}
	return o
}
