package pool

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"ferry/internal/tunneltest"
	"ferry/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dialer makes a new session pair per dial and hands out the edge's end;
// the origin's ends come out of made, for the test to look at.
type dialer struct{ made chan *tunneltest.Session }

func (d dialer) Dial(context.Context) (tunnel.Session, error) {
	e, o := tunneltest.Pair(tunneltest.Options{})
	d.made <- o
	return e, nil
}

// run runs p until cancel is called; ran is closed when Run returns.
func run(p *Pool) (cancel context.CancelFunc, ran <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	return cancel, done
}

// waitUp waits until peer i of p has n sessions in service.
func waitUp(p *Pool, i, n int) {
	for {
		changed := p.Changed()
		if p.SessionsUp(i) == n {
			return
		}
		<-changed
	}
}

// TestLeastBusy checks that a peer gets Size sessions and that places go
// to the session with the fewest.
func TestLeastBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := dialer{made: make(chan *tunneltest.Session, 3)}
		p := &Pool{Peers: []Peer{{Name: "o", Dialer: d}}, Size: 3, Log: slog.New(slog.DiscardHandler)}
		cancel, ran := run(p)
		waitUp(p, 0, 3)
		count := map[*Live]int{}
		var lent []*Live
		for range 6 {
			l, _ := p.Pick(nil, 0)
			if l == nil {
				t.Fatal("no session lent")
			}
			count[l]++
			lent = append(lent, l)
		}
		for l, n := range count {
			if n != 2 {
				t.Errorf("session %p lent %d places, want 2", l, n)
			}
		}
		if len(count) != 3 {
			t.Errorf("%d sessions used, want 3", len(count))
		}
		for _, l := range lent {
			p.Release(l)
		}
		cancel()
		<-ran
	})
}

// TestDrain checks that at the end of Run's context the pool tells every
// peer at once, lends out nothing more, keeps a session while a place lent
// on it is in use, and closes it when that place is given back.
func TestDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := dialer{made: make(chan *tunneltest.Session, 2)}
		p := &Pool{Peers: []Peer{{Name: "o", Dialer: d}}, Size: 2, Log: slog.New(slog.DiscardHandler)}
		cancel, ran := run(p)
		waitUp(p, 0, 2)
		busy, _ := p.Pick(nil, 0)
		a, b := <-d.made, <-d.made
		cancel()
		synctest.Wait()
		for _, s := range []*tunneltest.Session{a, b} {
			select {
			case <-s.PeerDraining():
			default:
				t.Error("a peer was not told of the drain")
			}
		}
		if l, _ := p.Pick(nil, 0); l != nil {
			t.Error("a draining pool lent a place")
		}
		open := 0
		for _, s := range []*tunneltest.Session{a, b} {
			select {
			case <-s.Done():
			default:
				open++
			}
		}
		if open != 1 {
			t.Errorf("%d sessions open while one place is lent, want 1", open)
		}
		select {
		case <-ran:
			t.Fatal("Run returned with a place in use")
		default:
		}
		p.Release(busy)
		<-ran
		select {
		case <-busy.Session.Done():
		default:
			t.Error("the busy session was not closed once its place came back")
		}
	})
}

// TestRetired checks that a retired session lends out nothing, that its
// keeper dials a replacement, and that it is closed once its places are
// given back.
func TestRetired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := dialer{made: make(chan *tunneltest.Session, 2)}
		p := &Pool{Peers: []Peer{{Name: "o", Dialer: d}}, Size: 1, Log: slog.New(slog.DiscardHandler),
			Backoff: Backoff{Base: time.Millisecond, Max: time.Millisecond}}
		cancel, ran := run(p)
		waitUp(p, 0, 1)
		old, _ := p.Pick(nil, 0)
		first := <-d.made
		old.Retire()
		second := <-d.made // the replacement
		waitUp(p, 0, 1)
		if l, _ := p.Pick(nil, 0); l == nil || l == old {
			t.Error("the replacement is not lent out")
		} else {
			p.Release(l)
		}
		select {
		case <-second.Done():
			t.Error("the replacement ended")
		default:
		}
		select {
		case <-first.Done():
			t.Error("the retired session was closed with a place in use")
		default:
		}
		p.Release(old)
		synctest.Wait()
		select {
		case <-first.Done():
		default:
			t.Error("the retired session was not closed once idle")
		}
		cancel()
		<-ran
	})
}
