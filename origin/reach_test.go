package origin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"ferry/config"
	"ferry/internal/tunneltest"
	"ferry/tunnel"
	"ferry/upstream"
)

// TestTellsEdges checks that the origin tells its edges which routes it
// cannot reach: a session up before the route goes down is told when it
// does, one that comes up later is told at once, and both when it returns.
func TestTellsEdges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		targets, err := config.ParseTargets("chat=chat.test:5222,media=media.test:443")
		if err != nil {
			t.Fatal(err)
		}
		var chatDown atomic.Bool
		dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
			if addr == "chat.test:5222" && chatDown.Load() {
				return nil, errors.New("connection refused")
			}
			a, b := net.Pipe()
			b.Close()
			return a, nil
		}
		ln := tunneltest.NewListener(tunneltest.Options{})
		srv := &Server{
			Listeners: []tunnel.Listener{ln},
			Upstream:  &upstream.Dialer{Targets: targets, DialContext: dial},
			Log:       slog.New(slog.DiscardHandler),
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() { srv.Run(ctx); close(ran) }()
		defer func() { cancel(); <-ran }()

		early, err := ln.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer early.Close()
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := early.PeerUnreachable(); got != 0 {
			t.Fatalf("told %v while every route answers", got)
		}
		chatDown.Store(true)
		time.Sleep(upstream.DefaultDownAfter + upstream.DefaultProbeEvery)
		synctest.Wait()
		if got := early.PeerUnreachable(); got != tunnel.RouteChat {
			t.Errorf("a live session was told %v, want chat", got)
		}
		late, err := ln.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer late.Close()
		synctest.Wait()
		if got := late.PeerUnreachable(); got != tunnel.RouteChat {
			t.Errorf("a new session was told %v, want chat", got)
		}
		chatDown.Store(false)
		time.Sleep(upstream.DefaultProbeEvery)
		synctest.Wait()
		if a, b := early.PeerUnreachable(), late.PeerUnreachable(); a != 0 || b != 0 {
			t.Errorf("after the route returned, told %v and %v", a, b)
		}
	})
}
