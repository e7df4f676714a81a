package edge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ferryproxy/ferry/pool"
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
	tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "full", Dialer: sessionDialer{full}}, {Name: "good", Dialer: sessionDialer{good}}}, Size: 1, Log: slog.New(slog.DiscardHandler)}}
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
	if n := full.opens.Load(); n != 3 {
		t.Errorf("the full session was tried %d times, want once per client", n)
	}
}

// answering is an origin's end of a pipeSession's streams: it reads the
// header, replies OK after delay, and discards the rest.
func answering(t *testing.T, streams <-chan net.Conn, delay time.Duration) {
	go func() {
		for far := range streams {
			go func() {
				defer far.Close()
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
			}()
		}
	}()
}

// silentSession is a session that stopped carrying anything: its streams
// take the header and first bytes, and nothing answers, not even a probe.
type silentSession struct {
	pipeSession
	probes atomic.Int64
}

func (s *silentSession) Probe(ctx context.Context) error {
	s.probes.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// onceDialer hands out its session once, then fails: a keeper cannot
// bring a retired session back.
type onceDialer struct {
	s    tunnel.Session
	done atomic.Bool
}

func (d *onceDialer) Dial(ctx context.Context) (tunnel.Session, error) {
	if d.done.Swap(true) {
		return nil, errors.New("no more")
	}
	return d.s, nil
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
	silent := &silentSession{pipeSession: pipeSession{discard: true, done: make(chan struct{})}}
	good := &pipeSession{streams: make(chan net.Conn), done: make(chan struct{})}
	answering(t, good.streams, 0)
	tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "silent", Dialer: &onceDialer{s: silent}}, {Name: "good", Dialer: sessionDialer{good}}}, Size: 1, Log: slog.New(slog.DiscardHandler)}}
	ctx := runTunnels(t, tun)
	waitUp(tun, 0, 1)
	waitUp(tun, 1, 1)

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
	if n := silent.probes.Load(); n != 1 {
		t.Errorf("the silent session was probed %d times", n)
	}
	close(good.streams)
}

// TestSlowReplyKept checks that a reply that is only slow (the origin's
// dial takes seconds) is waited for on a session that answers its probe:
// the client is not sent elsewhere, nor twice to the target.
func TestSlowReplyKept(t *testing.T) { synctest.Test(t, testSlowReplyKept) }

func testSlowReplyKept(t *testing.T) {
	slow := &pipeSession{streams: make(chan net.Conn), done: make(chan struct{})}
	answering(t, slow.streams, 4*time.Second)
	other := &pipeSession{discard: true, done: make(chan struct{})}
	tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "slow", Dialer: sessionDialer{slow}}, {Name: "other", Dialer: sessionDialer{other}}}, Size: 1, Log: slog.New(slog.DiscardHandler)}}
	ctx := runTunnels(t, tun)
	waitUp(tun, 0, 1)
	waitUp(tun, 1, 1)
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
	close(slow.streams)
}

// TestSendWithinWait checks that Send gives up at Wait, all steps
// together, when no session answers in time.
func TestSendWithinWait(t *testing.T) { synctest.Test(t, testSendWithinWait) }

func testSendWithinWait(t *testing.T) {
	slow := &pipeSession{streams: make(chan net.Conn), done: make(chan struct{})}
	answering(t, slow.streams, time.Hour)
	tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "slow", Dialer: sessionDialer{slow}}}, Size: 1, Log: slog.New(slog.DiscardHandler)}, Wait: 3 * time.Second}
	ctx := runTunnels(t, tun)
	waitUp(tun, 0, 1)
	start := time.Now()
	if _, err := tun.Send(ctx, Request{Route: "chat", First: []byte("hello")}); err == nil {
		t.Fatal("connected without a reply")
	}
	if d := time.Since(start); d != 3*time.Second {
		t.Errorf("Send gave up after %v, want Wait", d)
	}
	close(slow.streams)
}
