package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"ferry/edge"
	"ferry/internal/fake"
	"ferry/pool"
	"ferry/tunnel"
	"ferry/upstream"
)

// startReverse runs an edge that listens for tunnels on scheme, with a
// client listener per route, and an origin that dials it with up.
func startReverse(t *testing.T, scheme string, up *upstream.Dialer, routes ...string) (*edgeProc, *originProc, string) {
	t.Helper()
	ln, url := listenTunnel(t, scheme, "127.0.0.1:0", edgeEnd(t))
	var ls []lspec
	for _, r := range routes {
		ls = append(ls, lspec{name: r, route: r})
	}
	e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Listeners: []tunnel.Listener{ln}}}, &edge.Server{}, ls...)
	o := startReverseOrigin(t, up, url)
	return e, o, url
}

// waitSessions waits until the edge holds n sessions dialled in.
func waitSessions(t *testing.T, e *edgeProc, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		changed := e.tunnels.Changed()
		up := e.tunnels.SessionsUp(len(e.tunnels.Peers))
		if up == n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("sessions dialled in: %v, want %d", up, n)
		}
	}
}

// eventually waits up to 10 s for cond, checking it every few milliseconds:
// for state another process's goroutines change with no event to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// TestReverse runs reverse mode end to end: the origin dials the edge, the
// edge still opens the streams, and the origin coming back is redialled.
func TestReverse(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		echo := fake.Start(t, fake.Echo)
		up := &upstream.Dialer{Targets: fixed(map[string][]string{"chat": {echo.Addr()}}), Timeout: time.Second}
		e, o, url := startReverse(t, scheme, up, "chat")
		waitSessions(t, e, pool.DefaultSize)

		c := e.dial(t, "chat")
		if sent, got := roundTrip(t, c, 1<<20); sent != got {
			t.Fatal("echoed data differs from sent data")
		}
		echoClients(t, e.addrs["chat"], 50, 1)

		// Another origin takes over when the first one goes.
		o.stop()
		waitSessions(t, e, 0)
		startReverseOrigin(t, up, url)
		waitSessions(t, e, pool.DefaultSize)
		c = e.dial(t, "chat")
		if got, err := echoOnce(c, []byte("again")); err != nil || string(got) != "again" {
			t.Fatalf("after the origin came back: %q, %v", got, err)
		}

		// The edge's listener proves nothing to an edge, and shows a visitor
		// the decoy.
		if _, err := dialer(t, url).Dial(context.Background()); !errors.Is(err, tunnel.ErrSameRole) {
			t.Errorf("an edge dialling an edge: %v, want ErrSameRole", err)
		}
		if scheme == "ws" {
			r := get(t, http.DefaultClient, strings.Replace(strings.TrimSuffix(url, "/tunnel"), "ws://", "http://", 1)+"/", nil)
			if r.status != http.StatusOK || !strings.Contains(r.body, "<html") {
				t.Errorf("visitor got %d %q, want the decoy page", r.status, r.body)
			}
		}
	})
}

// TestEdgeDrain checks, with the edge dialling and dialled, that a draining
// edge refuses new clients, tells its origin, and lets a running transfer
// finish before it stops.
func TestEdgeDrain(t *testing.T) {
	for _, mode := range []string{"forward", "reverse"} {
		t.Run(mode, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, scheme string) {
				echo := fake.Start(t, fake.Echo)
				up := &upstream.Dialer{Targets: fixed(map[string][]string{"chat": {echo.Addr()}}), Timeout: time.Second}
				var e *edgeProc
				var o *originProc
				if mode == "reverse" {
					e, o, _ = startReverse(t, scheme, up, "chat")
					waitSessions(t, e, pool.DefaultSize)
				} else {
					o = startOriginWith(t, scheme, "127.0.0.1:0", up)
					e = startEdge(t, o.url, "chat")
				}
				running := e.dial(t, "chat")
				if got, err := echoOnce(running, []byte("first half")); err != nil || string(got) != "first half" {
					t.Fatalf("echo %q, %v", got, err)
				}

				e.cancel() // the edge drains
				eventually(t, "the origin hears that the edge drains", func() bool {
					return o.srv.Stats().EdgeDraining == int64(o.srv.Stats().Sessions) && o.srv.Stats().Sessions > 0
				})
				if c, err := clientDialer.Dial("tcp", e.addrs["chat"]); err == nil {
					c.Close()
					t.Fatal("a new client was accepted during the drain")
				}
				if got, err := echoOnce(running, []byte("second half")); err != nil || string(got) != "second half" {
					t.Fatalf("the running client was cut by the drain: %q, %v", got, err)
				}
				select {
				case <-e.done:
					t.Fatal("the edge stopped with a client running")
				default:
				}
				running.Close()
				<-e.done
			})
		})
	}
}
