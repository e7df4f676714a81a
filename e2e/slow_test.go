package e2e

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/ferryproxy/ferry/edge"
	"github.com/ferryproxy/ferry/internal/fake"
	"github.com/ferryproxy/ferry/tunnel"
)

// TestSlowConsumer checks that a client that stops reading does not slow
// another on the same session, and that what piles up for it is bounded by
// its stream's window.
func TestSlowConsumer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		var pushed atomic.Int64
		flowing := make(chan struct{})
		firehose := fake.Start(t, func(c net.Conn) {
			c.Read(make([]byte, 1))
			chunk := make([]byte, 64<<10)
			for {
				n, err := c.Write(chunk)
				if pushed.Add(int64(n)) >= 1<<20 {
					select {
					case <-flowing:
					default:
						close(flowing)
					}
				}
				if err != nil {
					return
				}
			}
		})
		echo := fake.Start(t, fake.Echo)
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"firehose": {firehose.Addr()}, "chat": {echo.Addr()}})
		e := startEdgeOrigins(t, &edge.Tunnels{Origins: []tunnel.Peer{{Name: "o", Dialer: dialer(t, o.url)}}, Pool: 1},
			&edge.Server{}, lspec{name: "firehose", route: "firehose"}, lspec{name: "chat", route: "chat"})

		stalled := e.dial(t, "firehose")
		stalled.Write([]byte("x")) // and never reads
		<-flowing

		// Meanwhile another client moves 16 MiB both ways on the same session.
		sent, got := roundTrip(t, e.dial(t, "chat"), 16<<20)
		if sent != got {
			t.Fatal("the other client's data was damaged")
		}
		// What the stalled client's stream let through is bounded by the
		// windows and socket buffers on its way, not by what was offered.
		if n := pushed.Load(); n > 48<<20 {
			t.Errorf("%d MiB pushed towards a client that reads nothing", n>>20)
		}
		t.Logf("%s: %.1f MiB pushed towards the stalled client", scheme, float64(pushed.Load())/(1<<20))
		stalled.Close()
	})
}
