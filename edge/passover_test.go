package edge

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"ferry/internal/tunneltest"
	"ferry/pool"
	"ferry/tunnel"
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

// TestFullSessionPassedOver checks that a client goes to another session
// when the preferred one cannot open a stream, rather than wait for it.
func TestFullSessionPassedOver(t *testing.T) { synctest.Test(t, testFullSessionPassedOver) }

func testFullSessionPassedOver(t *testing.T) {
	// A session at its stream limit, as QUIC's at MaxStreamsPerSession:
	// opening a stream waits until the caller gives up.
	full, _ := tunneltest.Pair(tunneltest.Options{})
	full.SetFull(true)
	good := discarding()
	tun, ctx := runOrigins(t, full, good)
	for i := range 3 {
		start := time.Now()
		st, err := tun.open(ctx, "chat", "", netip.AddrPort{}, nil, nil)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		// In the bubble's time: the open timeout, no more.
		if d := time.Since(start); d != OpenTimeout {
			t.Errorf("client %d waited %v", i, d)
		}
		st.Close()
	}
	if n := full.Opens(); n != 3 {
		t.Errorf("the full session was tried %d times, want once per client", n)
	}
}

// discarding is a session whose origin reads and drops what its streams
// carry, and answers nothing.
func discarding() *tunneltest.Session {
	sess, originSess := tunneltest.Pair(tunneltest.Options{})
	go tunneltest.Serve(originSess, tunneltest.Discard)
	return sess
}

// answering is a session whose origin reads each stream's header, replies
// OK after delay, and discards the rest.
func answering(delay time.Duration) *tunneltest.Session {
	sess, originSess := tunneltest.Pair(tunneltest.Options{})
	go tunneltest.Serve(originSess, func(far tunnel.Stream) {
		if _, err := tunnel.ReadHeader(far); err != nil {
			return
		}
		closed := make(chan struct{})
		go func() {
			io.Copy(io.Discard, far)
			close(closed)
		}()
		select {
		case <-time.After(delay): // the origin's dial, in the bubble's time
			tunnel.WriteReply(far, tunnel.ReplyOK)
			<-closed
		case <-closed:
		}
	})
	return sess
}

// runOrigins runs Tunnels over two origins of one session each, a's
// preferred, until the test ends, once both are up.
func runOrigins(t *testing.T, a, b *tunneltest.Session) (*Tunnels, context.Context) {
	tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "a", Dialer: tunneltest.Sessions(a)}, {Name: "b", Dialer: tunneltest.Sessions(b)}}, Size: 1, Log: slog.New(slog.DiscardHandler)}}
	ctx := runTunnels(t, tun)
	waitUp(tun, 0, 1)
	waitUp(tun, 1, 1)
	return tun, ctx
}

// waitUp waits until origin i of tun has n sessions in service.
func waitUp(tun *Tunnels, i, n int) {
	for {
		changed := tun.Changed()
		if tun.SessionsUp(i) == n {
			return
		}
		<-changed
	}
}

// TestSilentSessionPassedOver checks that a client whose reply does not
// come goes to another session once a probe of its session went
// unanswered, in about a second rather than at the session's ping timeout,
// and that the silent session then takes no new client.
func TestSilentSessionPassedOver(t *testing.T) { synctest.Test(t, testSilentSessionPassedOver) }

func testSilentSessionPassedOver(t *testing.T) {
	// A session that stopped carrying anything: its streams take the
	// header and first bytes, and nothing answers, not even a probe. Its
	// dialer cannot bring it back once retired.
	silent := discarding()
	silent.SetSilent(true)
	good := answering(0)
	tun, ctx := runOrigins(t, silent, good)

	start := time.Now()
	c, err := tun.Send(ctx, Request{Route: "chat", First: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if d, want := time.Since(start), ProbeAfter+ProbeTimeout; d != want {
		t.Errorf("the client waited %v, want %v (the probe's delay and timeout)", d, want)
	}
	c.Close()
	if n := tun.SessionsUp(0); n != 0 {
		t.Errorf("the silent session is still in service (%d up)", n)
	}
	start = time.Now()
	c, err = tun.Send(ctx, Request{Route: "chat", First: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d != 0 {
		t.Errorf("the next client waited %v", d)
	}
	c.Close()
	if n := silent.Probes(); n != 1 {
		t.Errorf("the silent session was probed %d times", n)
	}
}

// TestSlowReplyKept checks that a reply that is only slow (the origin's
// dial takes seconds) is waited for on a session that answers its probe:
// the client is not sent elsewhere, nor twice to the target.
func TestSlowReplyKept(t *testing.T) { synctest.Test(t, testSlowReplyKept) }

func testSlowReplyKept(t *testing.T) {
	slow := answering(4 * time.Second)
	other := discarding()
	tun, ctx := runOrigins(t, slow, other)
	start := time.Now()
	c, err := tun.Send(ctx, Request{Route: "chat", First: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d != 4*time.Second {
		t.Errorf("the client waited %v, want the origin's 4 s", d)
	}
	c.Close()
	if n := tun.SessionsUp(0); n != 1 {
		t.Errorf("the slow session was retired")
	}
}

// TestSendWithinWait checks that Send gives up at Wait, all steps
// together, when no session answers in time.
func TestSendWithinWait(t *testing.T) { synctest.Test(t, testSendWithinWait) }

func testSendWithinWait(t *testing.T) {
	slow := answering(time.Hour)
	tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "slow", Dialer: tunneltest.Sessions(slow)}}, Size: 1, Log: slog.New(slog.DiscardHandler)}, Wait: 3 * time.Second}
	ctx := runTunnels(t, tun)
	waitUp(tun, 0, 1)
	start := time.Now()
	if _, err := tun.Send(ctx, Request{Route: "chat", First: []byte("hello")}); err == nil {
		t.Fatal("connected without a reply")
	}
	if d := time.Since(start); d != 3*time.Second {
		t.Errorf("Send gave up after %v, want Wait", d)
	}
}
