package pool

import (
	"log/slog"
	"testing"
	"testing/synctest"

	"ferry/internal/tunneltest"
	"ferry/tunnel"
)

// TestPickReachable checks that a route goes to the first origin that
// says it reaches it, to the first origin still when none does, and that
// Unreachable is what every origin says it cannot reach.
func TestPickReachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := dialer{made: make(chan *tunneltest.Session, 1)}
		second := dialer{made: make(chan *tunneltest.Session, 1)}
		p := &Pool{Peers: []Peer{{Name: "first", Dialer: first}, {Name: "second", Dialer: second}}, Size: 1, Log: slog.New(slog.DiscardHandler)}
		cancel, ran := run(p)
		defer func() { cancel(); <-ran }()
		waitUp(p, 0, 1)
		waitUp(p, 1, 1)
		o1, o2 := <-first.made, <-second.made
		pick := func(route tunnel.Routes) *tunneltest.Session {
			t.Helper()
			l, _ := p.Pick(nil, route)
			if l == nil {
				t.Fatal("no session lent")
			}
			defer p.Release(l)
			if l.Session.(*tunneltest.Session).Peer() == o1 {
				return o1
			}
			return o2
		}
		if pick(tunnel.RouteChat) != o1 || p.Unreachable() != 0 {
			t.Fatal("with every route reachable, chat did not go to the first origin")
		}
		o1.TellUnreachable(tunnel.RouteChat)
		if pick(tunnel.RouteChat) != o2 {
			t.Error("chat went to the origin that cannot reach it")
		}
		if pick(tunnel.RouteMedia) != o1 {
			t.Error("media left the first origin, which reaches it")
		}
		if got := p.Unreachable(); got != 0 {
			t.Errorf("Unreachable = %v while the second origin reaches chat", got)
		}
		if a, b := p.PeerUnreachable(0), p.PeerUnreachable(1); a != tunnel.RouteChat || b != 0 {
			t.Errorf("PeerUnreachable = %v, %v; want chat, none", a, b)
		}
		o2.TellUnreachable(tunnel.RouteChat | tunnel.RouteMedia)
		if pick(tunnel.RouteChat) != o1 {
			t.Error("with no origin reaching chat, it did not go to the first")
		}
		if got := p.Unreachable(); got != tunnel.RouteChat {
			t.Errorf("Unreachable = %v, want chat", got)
		}
	})
}
