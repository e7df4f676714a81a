package e2e

import (
	"net"
	"sync/atomic"
	"testing"

	"ferry/edge"
	"ferry/internal/fake"
	"ferry/pool"
)

// TestSlowConsumer checks that a client that stops reading does not slow
// another on the same session, and that what piles up for it is bounded by
// its stream's window.
func TestSlowConsumer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		f := startFirehose(t, scheme)
		e, pushed, flowing := f.edge, &f.pushed, f.flowing

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

// firehose is an edge and origin whose route firehose leads to a target
// that, once a client's first byte is in, writes as fast as it can, and
// whose route chat echoes.
type firehose struct {
	edge    *edgeProc
	pushed  atomic.Int64  // bytes the target has written
	flowing chan struct{} // closed once 1 MiB is out
	target  chan net.Conn // the target's side of the first client
}

func startFirehose(t *testing.T, scheme string) *firehose {
	f := &firehose{flowing: make(chan struct{}), target: make(chan net.Conn, 1)}
	srv := fake.Start(t, func(c net.Conn) {
		c.Read(make([]byte, 1))
		select {
		case f.target <- c:
		default:
		}
		chunk := make([]byte, 64<<10)
		for {
			n, err := c.Write(chunk)
			if f.pushed.Add(int64(n)) >= 1<<20 {
				select {
				case <-f.flowing:
				default:
					close(f.flowing)
				}
			}
			if err != nil {
				return
			}
		}
	})
	echo := fake.Start(t, fake.Echo)
	o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"firehose": {srv.Addr()}, "chat": {echo.Addr()}})
	f.edge = startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "o", Dialer: dialer(t, o.url)}}, Size: 1}},
		&edge.Server{}, lspec{name: "firehose", route: "firehose"}, lspec{name: "chat", route: "chat"})
	return f
}
