package e2e

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/edge"
	"ferry/internal/fake"
	"ferry/internal/tunneltest"
	"ferry/pool"
)

type usage struct {
	goroutines, fds int
	heap            uint64
}

func measure(t *testing.T) usage {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return usage{runtime.NumGoroutine(), len(fds), ms.HeapInuse}
}

// TestRestartsLeakNothing stops and starts the origin 20 times while 100
// clients connect in a loop; afterwards goroutines, open files and heap are
// back near where they started, and the edge redialled no more than its
// backoff allows.
func TestRestartsLeakNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("20 restarts")
	}
	echo := fake.Start(t, fake.Echo)
	targets := map[string][]string{"chat": {echo.Addr()}}
	o := startOrigin(t, "ws", "127.0.0.1:0", targets)
	d := &tunneltest.Dialer{Next: dialer(t, o.url).Dial} // counts the dials
	e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "o", Dialer: d}}}}, &edge.Server{},
		lspec{name: "chat", route: "chat"})
	c := e.dial(t, "chat")
	if _, err := echoOnce(c, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	before := measure(t)

	stop := make(chan struct{})
	var clients sync.WaitGroup
	var served atomic.Int64
	progress := make(chan struct{}, 1)
	for range 100 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := clientDialer.Dial("tcp", e.addrs["chat"])
				if err != nil {
					continue
				}
				c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := echoOnce(c, []byte("ping")); err == nil {
					served.Add(1)
					select {
					case progress <- struct{}{}:
					default:
					}
				}
				c.Close()
			}
		}()
	}
	const restarts = 20
	for range restarts {
		o.stop()
		o = startOrigin(t, "ws", o.addr, targets)
		// Clients get through the new origin before the next restart.
		<-progress // perhaps from before the restart
		for range 50 {
			select {
			case <-progress:
			case <-time.After(10 * time.Second):
				t.Fatal("clients do not get through after a restart")
			}
		}
	}
	close(stop)
	clients.Wait()
	if served.Load() == 0 {
		t.Fatal("no client was served")
	}

	// What the clients started ends asynchronously; retry the comparison
	// for a while, as goleak does.
	var after usage
	for deadline := time.Now().Add(10 * time.Second); ; {
		after = measure(t)
		if after.goroutines <= before.goroutines+10 && after.fds <= before.fds+10 && after.heap <= before.heap+16<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d restarts: goroutines %d → %d, open files %d → %d, heap %d → %d KiB",
				restarts, before.goroutines, after.goroutines, before.fds, after.fds, before.heap>>10, after.heap>>10)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Each restart ends the pool's 2 sessions; each is redialled with
	// backoff, and fails only while the origin is down.
	if n := d.Dials(); n < 2*restarts || n > 2*restarts*20 {
		t.Errorf("%d dials for %d restarts of a pool of 2", n, restarts)
	}
	t.Logf("%d clients served, %d dials; goroutines %d → %d, files %d → %d, heap %d → %d KiB",
		served.Load(), d.Dials(), before.goroutines, after.goroutines, before.fds, after.fds, before.heap>>10, after.heap>>10)
}
