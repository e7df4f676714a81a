package edge

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ferryproxy/ferry/tunnel"
)

// runTunnels runs tun until the test ends, and returns the context of its
// clients.
func runTunnels(t *testing.T, tun *Tunnels) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		tun.Run(ctx)
		close(ran)
	}()
	t.Cleanup(func() {
		cancel()
		<-ran
	})
	return ctx
}

// fullSession is a session at its stream limit: opening a stream waits
// until the caller gives up, as QUIC's OpenStreamSync does.
type fullSession struct {
	pipeSession
	opens atomic.Int64
}

func (s *fullSession) OpenStream(ctx context.Context) (tunnel.Stream, error) {
	s.opens.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestFullSessionPassedOver checks that a client goes to another session
// when the preferred one cannot open a stream, rather than wait for it.
func TestFullSessionPassedOver(t *testing.T) { synctest.Test(t, testFullSessionPassedOver) }

func testFullSessionPassedOver(t *testing.T) {
	full := &fullSession{pipeSession: pipeSession{done: make(chan struct{})}}
	good := &pipeSession{discard: true, done: make(chan struct{})}
	tun := &Tunnels{
		Origins: []tunnel.Peer{{Name: "full", Dialer: sessionDialer{full}}, {Name: "good", Dialer: sessionDialer{good}}},
		Pool:    1, Log: slog.New(slog.DiscardHandler),
	}
	ctx := runTunnels(t, tun)
	for {
		changed := tun.Changed()
		if tun.SessionsUp(0) == 1 && tun.SessionsUp(1) == 1 {
			break
		}
		<-changed
	}
	for i := range 3 {
		start := time.Now()
		st, err := tun.Connect(ctx, "chat", "", netip.AddrPort{})
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		// In the bubble's time: the open timeout, no more.
		if d := time.Since(start); d != OpenTimeout {
			t.Errorf("client %d waited %v", i, d)
		}
		st.Close()
	}
	if n := full.opens.Load(); n != 3 {
		t.Errorf("the full session was tried %d times, want once per client", n)
	}
}
