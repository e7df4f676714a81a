package e2e

import (
	"context"
	"testing"
	"time"

	"ferry/edge"
	"ferry/internal/fake"
	"ferry/pool"
	"ferry/tunnel"
)

// keptDialer hands each session it dials to the test as well.
type keptDialer struct {
	tunnel.Dialer
	sessions chan tunnel.Session
}

func (d *keptDialer) Dial(ctx context.Context) (tunnel.Session, error) {
	s, err := d.Dialer.Dial(ctx)
	if err == nil {
		select {
		case d.sessions <- s:
		default:
		}
	}
	return s, err
}

// awaitSessions waits until origin i of e has n sessions up.
func (e *edgeProc) awaitSessions(t *testing.T, i, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		changed := e.tunnels.Changed()
		if e.tunnels.SessionsUp(i) == n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("origin %d has %d sessions up, want %d", i, e.tunnels.SessionsUp(i), n)
		}
	}
}

// TestStreamLimitPassedOver checks, over QUIC, that a client whose
// preferred session is at its stream limit (the origin's
// MaxIncomingStreams, tunnel.MaxStreamsPerSession) goes to another session
// after edge.OpenTimeout, rather than wait for a stream of the full one to
// end. The limit is QUIC's own: the test fills the session with streams
// opened on it directly, which the origin never hears of (a QUIC stream
// costs the peer's credit from its opening, and is sent with its first
// byte). yamux (ws, wss) has the same limit at the origin, but it resets a
// stream beyond it instead of blocking its opening, and filling it takes a
// stream served by the origin for each: see the report of issue 13.
func TestStreamLimitPassedOver(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 32,768 streams")
	}
	echo := fake.Start(t, fake.Echo)
	targets := map[string][]string{"chat": {echo.Addr()}}
	full := startOrigin(t, "quic", "127.0.0.1:0", targets)
	other := startOrigin(t, "quic", "127.0.0.1:0", targets)
	kept := &keptDialer{Dialer: dialer(t, full.url), sessions: make(chan tunnel.Session, 1)}
	e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "full", Dialer: kept}, {Name: "other", Dialer: dialer(t, other.url)}}, Size: 1}},
		&edge.Server{}, lspec{name: "chat", route: "chat"})
	e.awaitSessions(t, 0, 1)
	e.awaitSessions(t, 1, 1)
	sess := <-kept.sessions

	// The control stream is one of the origin's MaxStreamsPerSession+1.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range tunnel.MaxStreamsPerSession {
		if _, err := sess.OpenStream(ctx); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if st, err := sess.OpenStream(short); err == nil {
		st.Close()
		t.Fatal("the session opened a stream beyond its limit")
	}

	for i := range 3 {
		before := other.srv.Stats().Streams
		start := time.Now()
		c := e.dial(t, "chat")
		c.SetDeadline(time.Now().Add(edge.OpenTimeout + 3*time.Second))
		if got, err := echoOnce(c, []byte("ping")); err != nil || string(got) != "ping" {
			t.Fatalf("client %d: %q, %v", i, got, err)
		}
		d := time.Since(start)
		if other.srv.Stats().Streams != before+1 {
			t.Errorf("client %d did not go to the other session", i)
		}
		if d > edge.OpenTimeout+time.Second {
			t.Errorf("client %d waited %v, want about the open timeout, %v", i, d, edge.OpenTimeout)
		}
		t.Logf("client %d got through the other session after %v", i, d.Round(time.Millisecond))
	}
	if n := full.srv.Stats().Streams; n != 0 {
		t.Errorf("%d streams reached the full session's origin", n)
	}
}
