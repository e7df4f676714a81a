package e2e

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ferry/dnstun/reliable"
	"ferry/edge"
	"ferry/internal/fake"
	"ferry/pool"
	"ferry/tunnel"
)

// dnsMain wires the dns transport in, as cmd/ferry does, and returns the
// leak checks' exceptions for kcp-go's goroutines.
func dnsMain() []goleak.Option {
	tunnel.SetDNSStreams(tunnel.DNSStreamsOf(reliable.Dial, reliable.Listen))
	var opts []goleak.Option
	for _, f := range reliable.LeakedFunctions {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	return opts
}

// blockable is a dialer that fails while blocked, as a transport a censor
// has cut.
type blockable struct {
	tunnel.Dialer
	blocked atomic.Bool
}

func (b *blockable) Dial(ctx context.Context) (tunnel.Session, error) {
	if b.blocked.Load() {
		return nil, errors.New("blocked")
	}
	s, err := b.Dialer.Dial(ctx)
	if err == nil && b.blocked.Load() {
		// A dial begun before the cut brings no session up after it, as
		// on a link that was cut.
		s.Close()
		return nil, errors.New("blocked")
	}
	return s, err
}

// TestDNSFallback: an edge whose origins are ws, then dns last, as
// FERRY_EDGE_ORIGINS=ws://...,dns://... makes them: clients go via ws and
// dns is not dialled; ws cut, they go via dns; ws back, new clients go via
// ws at once, while a client on dns goes on until it ends.
func TestDNSFallback(t *testing.T) {
	echo := fake.Start(t, fake.Echo)
	targets := map[string][]string{"chat": {echo.Addr()}}
	w := startOrigin(t, "ws", "127.0.0.1:0", targets)
	d := startOrigin(t, "dns", "127.0.0.1:0", targets)
	dnsURL := "dns://tunnel?resolver=" + d.addr // the harness's zone: its path
	if !strings.HasSuffix(d.url, "/tunnel") {
		t.Fatalf("the dns origin listens at %s", d.url)
	}
	ws := &blockable{Dialer: dialer(t, w.url)}
	e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{
		{Name: "ws", Dialer: ws},
		{Name: "dns", Dialer: dialer(t, dnsURL), Fallback: true},
	}}}, &edge.Server{}, lspec{name: "chat", route: "chat"})

	via := func() (net.Conn, string) { return e.via(t, 5*time.Second, carrier{"ws", w}, carrier{"dns", d}) }
	await := func(want string, limit time.Duration) net.Conn {
		t.Helper()
		since := time.Now()
		for {
			changed := e.tunnels.Changed()
			c, got := via()
			if got == want {
				t.Logf("clients go via %s after %v", want, time.Since(since).Round(10*time.Millisecond))
				return c
			}
			c.Close()
			if time.Since(since) > limit {
				t.Fatalf("clients still go via %s after %v, want %s", got, limit, want)
			}
			select {
			case <-changed:
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	await("ws", 10*time.Second)
	if n := d.srv.Stats().Streams; n != 0 {
		t.Errorf("%d streams went via dns while ws was up", n)
	}

	ws.blocked.Store(true) // cut: no new session, and the live ones die
	for {
		// A dial that began before the cut may bring a session up after
		// the first kill.
		changed := e.tunnels.Changed()
		w.killSessions()
		if e.tunnels.SessionsUp(0) == 0 {
			break
		}
		select {
		case <-changed:
		case <-time.After(10 * time.Millisecond):
		}
	}
	dnsClient := await("dns", time.Minute)

	ws.blocked.Store(false) // back
	await("ws", 10*time.Second)
	if got, err := echoOnce(dnsClient, []byte("still there")); err != nil || string(got) != "still there" {
		t.Fatalf("the client on the dns session was cut by the return of ws: %q, %v", got, err)
	}
	dnsClient.Close()
}
