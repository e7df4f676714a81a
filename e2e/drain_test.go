package e2e

import (
	"testing"

	"ferry/edge"
	"ferry/internal/fake"
	"ferry/pool"
)

// TestOriginDrain checks that a draining origin lets a running client
// finish while the edge puts new clients on its next origin at once.
func TestOriginDrain(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		echo := fake.Start(t, fake.Echo)
		targets := map[string][]string{"chat": {echo.Addr()}}
		a := startOrigin(t, scheme, "127.0.0.1:0", targets)
		b := startOrigin(t, scheme, "127.0.0.1:0", targets)
		e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{
			{Name: "a", Dialer: dialer(t, a.url)},
			{Name: "b", Dialer: dialer(t, b.url)},
		}}}, &edge.Server{}, lspec{name: "chat", route: "chat"})
		// Wait until the edge holds its sessions to a, the preferred origin.
		for {
			changed := e.tunnels.Changed()
			if e.tunnels.SessionsUp(0) == pool.DefaultSize {
				break
			}
			<-changed
		}

		running := e.dial(t, "chat")
		if got, err := echoOnce(running, []byte("first half")); err != nil || string(got) != "first half" {
			t.Fatalf("echo %q, %v", got, err)
		}
		if a.srv.Stats().Streams != 1 {
			t.Fatal("the first client did not go to the preferred origin")
		}

		a.cancel() // a drains
		// Clients that reach a before the edge learns of the drain are
		// refused there and retried on b by the edge: none is lost.
		for range 5 {
			c := e.dial(t, "chat")
			got, err := echoOnce(c, []byte("new"))
			c.Close()
			if err != nil || string(got) != "new" {
				t.Fatalf("a new client during the drain: %q, %v", got, err)
			}
		}
		if got, err := echoOnce(running, []byte("second half")); err != nil || string(got) != "second half" {
			t.Fatalf("the running client was cut by the drain: %q, %v", got, err)
		}
		running.Close()
		<-a.done // the drain ends once its last stream has
		if b.srv.Stats().Sessions == 0 {
			t.Fatal("no session to the second origin")
		}
	})
}
