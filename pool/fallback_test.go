package pool

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"ferry/internal/tunneltest"
	"ferry/tunnel"
)

// switchDialer fails while down is set, and otherwise makes a session
// pair, keeping the origin's end in last.
type switchDialer struct {
	down  atomic.Bool
	dials atomic.Int64
	last  atomic.Pointer[tunneltest.Session]
}

func (d *switchDialer) Dial(context.Context) (tunnel.Session, error) {
	d.dials.Add(1)
	if d.down.Load() {
		return nil, errors.New("down")
	}
	e, o := tunneltest.Pair(tunneltest.Options{})
	d.last.Store(o)
	return e, nil
}

// TestFallback: ws up, the dns fallback not dialled; ws lost, dns dialled
// and used; ws back, dns retired at once, and closed once its last stream
// ends, while new streams go to ws.
func TestFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws, dns := &switchDialer{}, &switchDialer{}
		p := &Pool{Peers: []Peer{{Name: "ws", Dialer: ws}, {Name: "dns", Dialer: dns, Fallback: true}}, Size: 1, Log: slog.New(slog.DiscardHandler)}
		cancel, ran := run(p)
		waitUp(p, 0, 1)
		synctest.Wait()
		if n := dns.dials.Load(); n != 0 {
			t.Fatalf("the fallback was dialled %d times while ws was up", n)
		}

		// ws goes down and stays down: dns takes over.
		ws.down.Store(true)
		ws.last.Load().Close()
		waitUp(p, 1, 1)
		l, _ := p.Pick(nil, 0)
		if l == nil || l.Session == nil {
			t.Fatal("no session lent while only dns is up")
		}
		dnsSession := dns.last.Load()
		if n := p.SessionsUp(0); n != 0 {
			t.Fatalf("ws has %d sessions", n)
		}

		// ws comes back: dns is retired, lends nothing new, and closes
		// once the stream lent on it ends.
		ws.down.Store(false)
		waitUp(p, 0, 1)
		waitUp(p, 1, 0)
		if l2, _ := p.Pick(nil, 0); l2 == nil || l2 == l {
			t.Fatal("a new stream did not go to ws")
		} else {
			p.Release(l2)
		}
		synctest.Wait()
		select {
		case <-dnsSession.Done():
			t.Fatal("the dns session closed with a stream still on it")
		default:
		}
		p.Release(l)
		<-dnsSession.Done()
		// And dns is not dialled again while ws is up.
		n := dns.dials.Load()
		synctest.Wait()
		if dns.dials.Load() != n {
			t.Error("the fallback was redialled while ws was up")
		}
		cancel()
		<-ran
	})
}
